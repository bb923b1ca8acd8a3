"""A served recommender: lesson 05's fused model behind a small HTTP API (FastAPI + uvicorn).

``Service`` holds everything a request needs, loaded once: the fused score matrix of the test history
(train + valid, the freshest interactions), that history, the titles and raw ids, and the item vectors of
notebook 02's chosen content setting. It answers three questions: what to recommend to a known user (the
fused scores, seen items removed, each item explained by the two history items closest to it in meaning),
what to recommend to a new user from a few liked titles or a free-text description (the content
recommender alone: a profile in the encoder's space, ranked by cosine), and whether it is up (``health``).

``load_service`` builds it from the artefacts the lessons leave behind and computes none of them: a server
must start in seconds and fail at once, with a message that says which lesson builds what is missing.
``create_app`` puts a ``Service`` behind FastAPI; ``python -m recsuite.course.serve`` (``make serve``) runs it
with uvicorn, and ``running`` starts one in a background thread for a notebook or a test.

HTTP API (JSON):

- ``GET /health`` -> ``{"status": "ok", "n_users", "n_items", "model", "loaded_at"}``
- ``GET /recommend?user_id=<raw MovieLens user id>&k=<1..MAX_K, default 10>`` ->
  ``{"user_id", "k", "items": [{"item_id", "title", "score", "explanation"}, ...]}``; an unknown user is a
  404 whose ``detail`` names the id; a ``k`` outside 1..MAX_K or not an integer is a 422.
- ``POST /recommend/cold`` with ``{"liked_titles": [...], "text": "...", "k": 10}`` (at least one of the
  first two) -> ``{"k", "liked": [{"item_id", "title"}, ...], "items": [...]}``; a title that is not in the
  catalogue is a 422 whose ``detail`` lists it, with close matches.

Limits of one request, each a 422 naming the limit when exceeded (nothing is cut short behind a 200):
``k`` <= ``MAX_K`` (100); ``liked_titles`` holds at most ``MAX_TITLES`` (50) titles of at most
``MAX_TITLE_CHARS`` (300) characters each; ``text`` holds at most ``MAX_TEXT_CHARS`` (800) characters. The
packaged MiniLM reads the first 256 tokens of a text; 800 characters of English prose are about 190 of them,
so a text within the limit is read whole (a text of unusual tokens, such as CJK characters or runs of
punctuation, can still need more).

Status codes: 4xx are the client's faults (404 unknown user, 422 a request outside the API); 5xx the
server's: 503 when the service cannot answer this kind of request (free text on a service built without an
encoder), 500 when a part of it fails (the encoder returns a wrong shape, NaN or a zero vector, or raises).
"""

from __future__ import annotations

import difflib
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Callable

import numpy as np

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.core.rows import unit_rows
from recsuite.models import semantic

fastapi = require("fastapi", "serve")
pydantic = require("pydantic", "serve")
FastAPI, HTTPException, Query, Request = fastapi.FastAPI, fastapi.HTTPException, fastapi.Query, fastapi.Request
JSONResponse = require("fastapi.responses", "serve").JSONResponse
BaseModel, ConfigDict, Field = pydantic.BaseModel, pydantic.ConfigDict, pydantic.Field
StringConstraints, model_validator = pydantic.StringConstraints, pydantic.model_validator

__all__ = ["MAX_K", "MAX_TEXT_CHARS", "MAX_TITLES", "MAX_TITLE_CHARS", "BadRequest", "Service", "ServiceFault",
           "ServiceUnavailable", "TitleIndex", "UnknownUser", "create_app", "running"]

_log = logging.getLogger(__name__)

#: The longest list one request may ask for (``k`` in 1..MAX_K).
MAX_K = 100
#: The longest free-text description (characters); about 190 MiniLM tokens of English, inside the 256 it reads.
MAX_TEXT_CHARS = 800
#: The most liked titles one request may give, and the longest title (ML-100K's longest has 74 characters).
MAX_TITLES = 50
MAX_TITLE_CHARS = 300
#: Up to this many items, a ``Service`` keeps every item pair's cosine (n_items² float32: 64 MiB at the limit).
COSINE_TABLE_MAX_ITEMS = 4096


class UnknownUser(LookupError):
    """A raw user id the service has no history for (HTTP 404)."""


class BadRequest(ValueError):
    """A request the service refuses for what it asks: unknown titles, a text over ``MAX_TEXT_CHARS`` (HTTP 422)."""


class ServiceUnavailable(RuntimeError):
    """A valid request this service cannot answer as built: free text without an encoder (HTTP 503)."""


class ServiceFault(RuntimeError):
    """A part of the service failed on a valid request: the encoder returned a bad output (HTTP 500)."""


def _title_key(title: str) -> str:
    return " ".join(title.split()).lower()


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class TitleIndex:
    """Catalogue titles matched as a person types them: exact, ignoring case and surrounding or repeated spaces.

    A MovieLens title with a trailing article also answers to its natural form ("Godfather, The" and "The
    Godfather"); a title the catalogue lists under several ids (ML-100K has a few) names all of them.

    Introduced in notebooks/11_serving.ipynb
    """

    def __init__(self, titles):
        self._by_title: dict[str, list[int]] = {}  # matching key -> item indices
        self._shown: dict[str, str] = {}  # matching key -> the title as a suggestion shows it
        for i, t in enumerate(checks.texts("titles", titles)):
            for form in dict.fromkeys([t.strip(), semantic.natural_title(t)]):  # "Godfather, The", "The Godfather"
                self._by_title.setdefault(_title_key(form), []).append(i)
                self._shown.setdefault(_title_key(form), form)

    def match(self, liked_titles) -> np.ndarray:
        """Sorted unique item indices of ``liked_titles``; unknown titles raise one ``BadRequest`` (a ValueError)
        listing each with its closest catalogue titles."""
        titles = checks.texts("liked_titles", liked_titles)
        found, unknown = [], []
        for t in titles:
            hit = self._by_title.get(_title_key(t))
            if hit is None:
                unknown.append(t)
            else:
                found.extend(hit)
        if unknown:
            parts = []
            for t in unknown:
                close = difflib.get_close_matches(_title_key(t), list(self._by_title), n=6, cutoff=0.6)
                # one suggestion per film: "Godfather, The" and "The Godfather" are the same items
                films, shown = set(), []
                for c in close:
                    if tuple(self._by_title[c]) not in films:
                        films.add(tuple(self._by_title[c]))
                        shown.append(self._shown[c])
                parts.append(f"{t!r}" + (f" (close: {', '.join(map(repr, shown[:3]))})" if shown else ""))
            raise BadRequest(f"liked_titles has {len(unknown)} title(s) not in the catalogue: {'; '.join(parts)}. "
                             "A title must match a catalogue title exactly, case and spacing aside")
        return np.unique(np.asarray(found, dtype=np.int64))


class Service:
    """Lesson 05's fused recommender, ready to answer requests: every array is loaded once, at construction.

    Build it from the lessons' artefacts with ``load_service``, or directly from arrays (a tiny synthetic
    catalogue in a test or an exercise):

    - ``user_ids`` (n_users,) raw user ids, row ``u`` of ``scores`` and ``history``;
    - ``item_ids`` (n_items,) raw item ids and ``titles`` (n_items,), column ``i``;
    - ``scores`` (n_users, n_items) the fused scores (``artifacts.fused_scores("test")``);
    - ``history`` (n_users, n_items) CSR of what each user has seen (never recommended to them);
    - ``item_vectors`` (n_items, d) the content vectors (``semantic.item_vectors``) and ``center`` whether
      the content recommender centres them (``artifacts.content_setting``): they explain recommendations and
      rank for new users;
    - ``catalogue`` (n_items,) bool mask of the items ``recommend`` may return (default: all; the lessons'
      test catalogue is the warm items, ``protocol.allowed_mask("test")``); ``recommend_cold`` ranks every
      item, since the content score needs no interactions;
    - ``encoder`` a function ``encoder(list_of_str) -> (n, d) array`` in the space of ``item_vectors`` (the
      packaged MiniLM: ``semantic.encode_texts``), needed only for free-text requests;
    - ``model`` a one-line description for ``health``; ``protocol`` kept for the lesson (may be None).

    Introduced in notebooks/11_serving.ipynb
    """

    def __init__(self, user_ids, item_ids, titles, scores, history, item_vectors, *, center: bool = False,
                 catalogue=None, encoder: Callable | None = None, model: str = "fused scores", protocol=None):
        self.user_ids = self._ids("user_ids", user_ids)
        self.item_ids = self._ids("item_ids", item_ids)
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        self.titles = np.asarray(checks.texts("titles", titles), dtype=object)
        if self.titles.shape != (n_items,):
            raise ValueError(f"titles must hold one title per item ({n_items}), got {len(self.titles)}")
        blank = [i for i, t in enumerate(self.titles) if not t.strip()]
        if blank:  # a blank title would answer to a blank liked title
            raise ValueError(f"titles must be non-empty, got an empty or blank title at item index(es) {blank[:10]}")
        self.scores = checks.array("scores", scores, ndim=2, dtype=np.float32, shape=(n_users, n_items))
        self.history = checks.sparse("history", history, shape=(n_users, n_items))
        self.history.eliminate_zeros()  # a stored 0 is not an interaction
        v = checks.array("item_vectors", item_vectors, ndim=2, dtype=np.float32, shape=(n_items, None), empty=False)
        self.center = checks.flag("center", center)
        if self.center:
            self._mean = v.mean(axis=0, dtype=np.float64).astype(np.float32)
            self.unit_vectors = semantic.center(v)
        else:
            self._mean = None
            self.unit_vectors = unit_rows(v)
        self.catalogue = np.ones(n_items, dtype=bool) if catalogue is None else checks.bool_mask(
            "catalogue", catalogue, n_items)
        self._outside = np.flatnonzero(~self.catalogue)  # columns recommend never returns
        # what every answer reads, computed once: Python ints and strs, the explanation's natural titles
        self._item_id_list = self.item_ids.tolist()
        self._title_list = [str(t) for t in self.titles]
        self._natural_titles = [semantic.natural_title(t) for t in self._title_list]
        # every item pair's cosine, when the catalogue is small enough (ML-100K: 11 MB): an explanation reads ten
        # columns of it instead of multiplying the history's vectors
        self._cosines = (self.unit_vectors @ self.unit_vectors.T if n_items <= COSINE_TABLE_MAX_ITEMS else None)
        if encoder is not None and not callable(encoder):
            raise TypeError(f"encoder must be None or a function encoder(texts) -> (n, d) array, "
                            f"got {checks.describe(encoder)}")
        self.encoder = encoder
        self.model = checks.text("model", model)
        self.protocol = protocol
        self.loaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._user_row = {int(u): i for i, u in enumerate(self.user_ids)}
        self.title_index = TitleIndex(self.titles)

    @staticmethod
    def _ids(name, ids) -> np.ndarray:
        a = np.asarray(ids)
        if a.ndim != 1 or a.size == 0 or a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be a non-empty 1-D array of int ids, got {checks.describe(a)}")
        if len(np.unique(a)) != len(a):
            raise ValueError(f"{name} must list each id once, got repeated ids")
        return a.astype(np.int64)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_row(self, user_id) -> int:
        """Row of raw ``user_id`` in ``scores`` and ``history``; ``UnknownUser`` when there is none.

        Introduced in notebooks/11_serving.ipynb
        """
        user_id = checks.integer("user_id", user_id)
        if user_id not in self._user_row:
            raise UnknownUser(f"unknown user_id {user_id}: not one of the {self.n_users} users this service "
                              f"knows (raw ids {int(self.user_ids.min())}..{int(self.user_ids.max())})")
        return self._user_row[user_id]

    def history_items(self, user_id) -> np.ndarray:
        """Item indices (columns) that raw ``user_id`` has seen.

        Introduced in notebooks/11_serving.ipynb
        """
        u = self.user_row(user_id)
        return self.history.indices[self.history.indptr[u]:self.history.indptr[u + 1]].astype(np.int64)

    def _because(self, reasons: np.ndarray, items: np.ndarray) -> list[list[int]]:
        """Per recommended item, the (at most two) ``reasons`` closest to it in meaning.

        ``semantic.explain(reasons, item, unit_vectors, top=2)`` for every item at once: one (reasons x items)
        product of the unit vectors instead of one call per item (a call copies and rescales the whole
        history, 80% of a request's time); ties go to the lower item index, as there.
        """
        if reasons.size == 0:
            return [[] for _ in items]
        reasons = np.unique(reasons)
        if self._cosines is not None:
            sims = self._cosines[reasons[:, None], items]
        else:
            sims = self.unit_vectors[reasons] @ self.unit_vectors[items].T
        cols = np.arange(items.size)
        first = sims.argmax(axis=0)  # argmax takes the first of equal values: ties to the lower item index
        if reasons.size == 1:
            return reasons[first][:, None].tolist()
        sims[first, cols] = -np.inf
        return np.stack([reasons[first], reasons[sims.argmax(axis=0)]], axis=1).tolist()

    def _items(self, items, scores, because, fallback: str, verb: str) -> list[dict]:
        out, natural = [], self._natural_titles
        for i, s, why in zip(items.tolist(), scores.tolist(), because):
            text = f"Because you {verb} {_join([natural[j] for j in why])}." if why else fallback
            out.append({"item_id": self._item_id_list[i], "title": self._title_list[i], "score": s,
                        "explanation": text})
        return out

    def recommend(self, user_id, k: int = 10) -> list[dict]:
        """The top ``k`` items of the fused scores for raw ``user_id``, best first, none of them seen.

        Each is ``{"item_id", "title", "score", "explanation"}``; the explanation names the two history items
        most similar to it (``semantic.explain``: each history item's share of the content score is its
        cosine with the item). Fewer than ``k`` come back only when the catalogue runs out.

        Introduced in notebooks/11_serving.ipynb
        """
        u = self.user_row(user_id)
        k = checks.positive_int("k", k)
        seen = self.history.indices[self.history.indptr[u]:self.history.indptr[u + 1]].astype(np.int64)
        top = self._top(u, seen, min(k, self.n_items))
        return self._items(top, self.scores[u, top], self._because(seen, top),
                           "Recommended by the fused model (no history to explain it).", "watched")

    def _top(self, u: int, seen: np.ndarray, k: int) -> np.ndarray:
        """``topk_from_scores`` for the one row ``u`` (score descending, equal scores by item index, seen and
        outside items never), without its -1 padding: the same list, without the block machinery a whole
        matrix needs (a request's row is ranked in microseconds)."""
        row = self.scores[u].copy()
        row[self._outside] = -np.inf
        row[seen] = -np.inf
        cut = row[np.argpartition(row, row.size - k)[row.size - k:]].min()  # the k-th largest score
        cand = np.flatnonzero(row >= cut)  # in item order: ties at the cut resolve to the lower index
        top = cand[np.argsort(-row[cand], kind="stable")[:k]]
        return top[np.isfinite(row[top])]  # the catalogue ran out: fewer than k

    def match_titles(self, liked_titles) -> np.ndarray:
        """Item indices of ``liked_titles`` (``TitleIndex.match``): exact matches, case and spacing aside.

        Unknown titles raise one ``BadRequest`` listing each with its closest catalogue titles.

        Introduced in notebooks/11_serving.ipynb
        """
        return self.title_index.match(liked_titles)

    def _text_profile(self, text: str) -> np.ndarray:
        if self.encoder is None:
            raise ServiceUnavailable("free text needs a text encoder, and this service was built without one "
                                     "(encoder=None); send liked_titles instead")
        out = self.encoder([text])  # an exception of the encoder's own is the server's fault: it propagates
        try:
            e = checks.array("the encoder's output", out, ndim=2, dtype=np.float32,
                             shape=(1, self.unit_vectors.shape[1]))
        except (TypeError, ValueError) as err:
            raise ServiceFault(f"the text encoder returned a bad output for one text: {err}") from err
        if not e.any():
            raise ServiceFault("the text encoder returned a zero vector, which has no direction to rank by")
        if self.center:  # centred with the catalogue's mean, as new items are (see semantic.center)
            return semantic.center(e, mean=self._mean)[0]
        return unit_rows(e)[0]

    def recommend_cold(self, liked_titles=None, text: str | None = None, k: int = 10) -> list[dict]:
        """Top ``k`` items for a new user from titles they liked, a free-text description, or both.

        Liked titles (see ``match_titles``) give the profile p = normalise(mean of their item vectors),
        centred first when the content setting centres (the content recommender of notebook 02 on a
        one-user history); a text is encoded by ``encoder`` and, when centring, centred with the catalogue's
        mean. Both together: p = normalise(p_titles + p_text), each counting half. Items are ranked by
        cos(p, v_i) over the whole catalogue, cold items included, and the liked items are left out.

        A ``text`` over ``MAX_TEXT_CHARS`` characters is a ``BadRequest`` (the encoder would read only its
        beginning); free text on a service without an encoder is ``ServiceUnavailable``, and an encoder output
        of the wrong shape, with NaN or all zeros, a ``ServiceFault``.

        Introduced in notebooks/11_serving.ipynb
        """
        k = checks.positive_int("k", k)
        if liked_titles is None and text is None:
            raise ValueError("give liked_titles (catalogue titles), text (a description) or both; got neither")
        liked = np.zeros(0, dtype=np.int64) if liked_titles is None else self.match_titles(liked_titles)
        profiles = []
        if liked.size:
            profiles.append(unit_rows(self.unit_vectors[liked].mean(axis=0, keepdims=True))[0])
        if text is not None:
            text = checks.text("text", text)
            if len(text) > MAX_TEXT_CHARS:
                raise BadRequest(f"text must be at most MAX_TEXT_CHARS = {MAX_TEXT_CHARS} characters (the encoder "
                                 f"would read only its beginning), got {len(text)}")
            profiles.append(self._text_profile(text))
        p = unit_rows(np.sum(profiles, axis=0, keepdims=True))[0]
        scores = self.unit_vectors @ p
        mask = np.ones(self.n_items, dtype=bool)
        mask[liked] = False
        order = np.flatnonzero(mask)[np.argsort(-scores[mask], kind="stable")][:k]
        described = "Close in meaning to your description."
        if liked.size and text is not None:
            described = "Close to your description and to what you liked."
        return self._items(order, scores[order], self._because(liked, order), described, "liked")

    def health(self) -> dict:
        """``{"status": "ok", "n_users", "n_items", "model", "loaded_at"}`` (``loaded_at``: ISO time, UTC).

        Introduced in notebooks/11_serving.ipynb
        """
        return {"status": "ok", "n_users": self.n_users, "n_items": self.n_items, "model": self.model,
                "loaded_at": self.loaded_at}


# ----------------------------------------------------------------------------------------------- HTTP


class RecommendedItem(BaseModel):
    item_id: int
    title: str
    score: float
    explanation: str


class Recommendations(BaseModel):
    user_id: int
    k: int
    items: list[RecommendedItem]


class LikedItem(BaseModel):
    item_id: int
    title: str


class ColdRequest(BaseModel):
    """A new user: titles they liked, a description of what they want, or both; and how many items.

    At most ``MAX_TITLES`` titles of ``MAX_TITLE_CHARS`` characters, a text of at most ``MAX_TEXT_CHARS``
    characters and ``k`` in 1..``MAX_K``: beyond them the request is a 422 naming the limit.
    """

    model_config = ConfigDict(extra="forbid")
    liked_titles: list[Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS)]] | None = Field(
        None, max_length=MAX_TITLES, examples=[["Star Wars", "The Godfather"]],
        description=f"catalogue titles, at most {MAX_TITLES} of at most {MAX_TITLE_CHARS} characters each")
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS, examples=["a funny animated film for children"],
                             description=f"a description of at most {MAX_TEXT_CHARS} characters")
    k: int = Field(10, ge=1, le=MAX_K)

    @model_validator(mode="after")
    def _something_to_go_on(self):
        if self.liked_titles is not None and not self.liked_titles:
            raise ValueError("liked_titles must hold at least one title when given")
        if self.text is not None and not self.text.strip():
            raise ValueError("text must be a non-empty description when given")
        if self.liked_titles is None and self.text is None:
            raise ValueError("give liked_titles (catalogue titles), text (a description) or both")
        return self


class ColdRecommendations(BaseModel):
    k: int
    liked: list[LikedItem]
    items: list[RecommendedItem]


class Health(BaseModel):
    status: str
    n_users: int
    n_items: int
    model: str
    loaded_at: str


class _ServerErrors:
    """ASGI middleware: an exception no endpoint handled is logged with its traceback and answered with a 500 JSON.

    Starlette's own handler for ``Exception`` re-raises after answering, and uvicorn's httptools protocol then
    closes the connection under the client; this answers and keeps the connection. A plain ASGI class, not
    ``BaseHTTPMiddleware``, so a request pays one function call for it.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - every fault of the server becomes a 500, logged
            _log.error("%s %s failed", scope["method"], scope["path"], exc_info=exc)
            if started:  # the answer is half sent: nothing valid can follow it
                raise
            await JSONResponse({"detail": f"internal server error ({type(exc).__name__}) while answering "
                                          f"{scope['method']} {scope['path']}; the server's log has the traceback"},
                               status_code=500)(scope, receive, send)


def create_app(service: Service) -> FastAPI:
    """A FastAPI app answering ``GET /health``, ``GET /recommend`` and ``POST /recommend/cold`` from ``service``.

    ``GET /recommend`` and ``GET /health`` run on the event loop: a recommendation is about 0.15 ms of NumPy,
    less than handing it to a worker thread and back costs. ``POST /recommend/cold`` may encode a text with
    MiniLM (milliseconds), which would block the loop, so it is a plain function that FastAPI runs in its thread
    pool. ``/recommend`` answers with JSON built directly from the service's own typed dicts (the schema is still
    ``Recommendations`` in the OpenAPI document): re-validating every item with pydantic cost more than the
    recommendation. The service is read-only, so concurrent requests share it safely. See the module docstring
    for the JSON, the limits and the status codes: only the client's faults are 4xx; ``ServiceUnavailable`` is a
    503, ``ServiceFault`` and any other exception a 500 whose ``detail`` says so (the traceback goes to the log).

    Introduced in notebooks/11_serving.ipynb
    """
    if not isinstance(service, Service):
        raise TypeError(f"service must be a recsuite.serving.service.Service (load_service()), got {checks.describe(service)}")
    app = FastAPI(title="recsuite", version="1", summary="Lesson 05's fused recommender, served.")
    app.add_middleware(_ServerErrors)

    @app.get("/health", response_model=Health)
    async def health():
        return service.health()

    @app.get("/recommend", response_model=Recommendations)
    async def recommend(user_id: Annotated[int, Query(description="a raw MovieLens user id")],
                        k: Annotated[int, Query(ge=1, le=MAX_K, description="how many items")] = 10):
        try:
            items = service.recommend(user_id, k)
        except UnknownUser as e:
            raise HTTPException(status_code=404, detail=str(e)) from None
        return JSONResponse({"user_id": user_id, "k": k, "items": items})

    @app.post("/recommend/cold", response_model=ColdRecommendations)
    def recommend_cold(request: ColdRequest):
        try:
            liked = [] if request.liked_titles is None else service.match_titles(request.liked_titles).tolist()
            items = service.recommend_cold(request.liked_titles, request.text, request.k)
        except BadRequest as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        except ServiceUnavailable as e:
            raise HTTPException(status_code=503, detail=str(e)) from None
        except ServiceFault as e:
            _log.error("POST /recommend/cold failed: %s", e, exc_info=e)
            raise HTTPException(status_code=500, detail=str(e)) from None
        return {"k": request.k, "items": items,
                "liked": [{"item_id": int(service.item_ids[i]), "title": str(service.titles[i])} for i in liked]}

    return app


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def running(service, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0, log_level: str = "warning"):
    """Serve ``service`` (a ``Service`` or a FastAPI app) with uvicorn in a background thread; yield its base URL.

    ``port=0`` takes a free port (a socket bound here and handed to uvicorn, so there is no race for it).
    Returns once ``/health`` answers (a RuntimeError after ``timeout`` seconds otherwise); on leaving the
    block the server stops taking connections, finishes what it is answering and its thread is joined, so
    the port is closed afterwards; a server that died while the block ran is a RuntimeError then. For a
    notebook or a test: it shares the process (and the GIL) with the caller. The production path is
    ``make serve`` (``python -m recsuite.course.serve``), a process of its own.

    Introduced in notebooks/11_serving.ipynb
    """
    uvicorn = require("uvicorn", "serve")

    app = service if isinstance(service, FastAPI) else create_app(service)
    checks.text("host", host)
    port = checks.integer("port", port, low=0, high=65535)
    timeout = checks.positive_number("timeout", timeout)
    checks.one_of("log_level", log_level, ("critical", "error", "warning", "info", "debug", "trace"))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    url = _url(host, sock.getsockname()[1])
    # log_config=None: leave the caller's logging (a notebook's) as it is
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, log_config=None, access_log=False))
    failed = []

    def serve():
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # noqa: BLE001 - uvicorn reports a failed start with SystemExit; re-raised below
            failed.append(e)

    thread = threading.Thread(target=serve, name=f"recsuite-serve {url}", daemon=True)
    thread.start()
    try:
        _wait_healthy(url, thread, timeout, failed)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():  # a request still running after `timeout`: stop waiting for it
            server.force_exit = True
            thread.join(5.0)
        sock.close()
        if thread.is_alive():
            warnings.warn(f"the server at {url} did not stop within {timeout + 5:g} s", RuntimeWarning, stacklevel=3)
    if failed:  # reached only when the block itself raised nothing: report the server's own failure
        raise RuntimeError(f"the server at {url} failed while serving: {failed[0]!r}") from failed[0]


def _wait_healthy(url: str, thread: threading.Thread, timeout: float, failed: list) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    deadline = time.monotonic() + timeout
    while True:
        if not thread.is_alive():
            raise RuntimeError(f"the server at {url} stopped while starting: {failed[0] if failed else 'no reason given'!r}")
        try:
            with opener.open(url + "/health", timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server at {url} did not answer GET /health within {timeout:g} s")
        time.sleep(0.02)
