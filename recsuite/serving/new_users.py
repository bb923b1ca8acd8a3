"""A new user served: demographics, a few liked titles and/or a sentence -> top-k, with the blend chosen for that n.

``NewUserRecommender`` holds what lesson 14 fit and chose: demographic popularity
(``cold_start.DemographicPopularity``), the personal models that read a user's liked items (functions of a one-row
CSR, e.g. EASE's x B or an ALS fold-in), and the blend chosen on the validation slice for each number n of liked
items: z(demographic) + w · z(personal), with z a row's scores standardised over the catalogue
(``standardise_rows``). A sentence adds w_text · z(text).

``POST /recommend/new`` (``add_new_user_route`` on any app, or ``create_new_user_app``) takes JSON
``{"age": 1..119, "gender": "F" | "M", "occupation": one of ``recommender.occupations``, "liked_titles": [...],
"text": "...", "k": 1..MAX_K}``; every field but ``k`` is optional, but one must be given. It answers
``{"k", "n", "method", "liked": [{"item_id", "title"}], "items": [{"item_id", "title", "score"}]}``, ``method``
saying what was used (the demographic cell and its size, the personal model and its weight). The limits are
``service``'s (``MAX_TITLES``, ``MAX_TITLE_CHARS``, ``MAX_TEXT_CHARS``, ``MAX_K``). An empty body, an unknown title
(with the closest catalogue titles), an unknown occupation, an age outside 1..119 or an oversized text is a 422;
text on a recommender without a text model is a 503. Only warm catalogue items are recommended, never a liked one.

Introduced in notebooks/14_new_users.ipynb
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.data.features import age_bucket
from recsuite.models.cold_start import DemographicPopularity
from recsuite.serving.service import MAX_TEXT_CHARS, BadRequest, ColdRequest, ServiceUnavailable, TitleIndex

fastapi = require("fastapi", "serve")
pydantic = require("pydantic", "serve")
FastAPI, HTTPException = fastapi.FastAPI, fastapi.HTTPException
Field, StrictInt, model_validator = pydantic.Field, pydantic.StrictInt, pydantic.model_validator

MAX_AGE = 119
GENDERS = ("F", "M")


def standardise_rows(scores) -> np.ndarray:
    """Each row's scores minus its mean, over its standard deviation (a constant row becomes 0), as float32.

    Introduced in notebooks/14_new_users.ipynb
    """
    s = checks.array("scores", scores, ndim=2).astype(np.float64)
    sd = s.std(axis=1, keepdims=True)
    return ((s - s.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


class NewUserRecommender:
    """Lesson 14's choice for a new user, ready to answer one person at a time.

    - ``item_ids`` (n_items,) raw ids and ``titles`` (n_items,), column i of every score;
    - ``catalogue`` (n_items,) bool: the items that may be recommended (the warm ones);
    - ``demographic``: a fitted ``DemographicPopularity`` (its levels name ``age_bucket``, ``gender``, ``occupation``);
    - ``personal``: name -> function(one-row CSR of liked items) -> (1, n_items) scores;
    - ``blend``: n -> {"model": a key of ``personal`` or "Demographic", "weight": w >= 0}, for n >= 1: a person who
      liked m items gets the entry of the largest n <= m (n = 0 is demographic popularity alone);
    - ``occupations``: the accepted occupation names; ``text_scorer`` (str -> (1, n_items)) and ``text_weight``:
      how a sentence is ranked and how much it counts (None: free text is refused with ``ServiceUnavailable``).

    Introduced in notebooks/14_new_users.ipynb
    """

    def __init__(self, item_ids, titles, catalogue, demographic: DemographicPopularity, personal: Mapping,
                 blend: Mapping, occupations, *, text_scorer: Callable | None = None, text_weight: float = 0.0):
        ids = np.asarray(item_ids)
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.dtype.kind in "UO"):
            raise TypeError(f"item_ids must be a 1-D array of int or str ids, got {checks.describe(item_ids)}")
        if len(np.unique(ids.astype(str))) != len(ids):
            raise ValueError("item_ids repeats an id; expected one id per item")
        self.item_ids = ids
        self.titles = np.asarray(checks.texts("titles", titles), dtype=object)
        n = len(self.item_ids)
        if self.titles.shape != (n,):
            raise ValueError(f"titles must hold one title per item ({n}), got {len(self.titles)}")
        blank = [i for i, t in enumerate(self.titles) if not t.strip()]
        if blank:  # a blank title would answer to a blank liked title
            raise ValueError(f"titles must be non-empty, got a blank title at item index(es) {blank[:10]}")
        self.catalogue = checks.bool_mask("catalogue", catalogue, n)
        if not isinstance(demographic, DemographicPopularity) or demographic.cells is None:
            raise TypeError(f"demographic must be a fitted cold_start.DemographicPopularity, got "
                            f"{checks.describe(demographic)}")
        if demographic.n_items != n:
            raise ValueError(f"demographic was fit on {demographic.n_items} items, item_ids has {n}")
        self.demographic = demographic
        if not isinstance(personal, Mapping) or not all(callable(f) for f in personal.values()):
            raise TypeError(f"personal must map a model name to a function of a one-row CSR, got "
                            f"{checks.describe(personal)}")
        self.personal = dict(personal)
        self.blend = self._check_blend(blend)
        if isinstance(occupations, str):
            raise TypeError(f"occupations must be a list of occupation names, got the str {occupations!r}")
        self.occupations = sorted(checks.texts("occupations", list(occupations)))
        if text_scorer is not None and not callable(text_scorer):
            raise TypeError(f"text_scorer must be None or a function text -> (1, n_items), got "
                            f"{checks.describe(text_scorer)}")
        self.text_scorer = text_scorer
        self.text_weight = checks.non_negative_number("text_weight", text_weight)
        if text_scorer is not None and self.text_weight == 0:
            raise ValueError("text_weight must be > 0 with a text_scorer (a text that counts 0 would be ignored)")
        self.title_index = TitleIndex(self.titles)

    def _check_blend(self, blend) -> dict:
        if not isinstance(blend, Mapping):
            raise TypeError(f"blend must map n (int >= 1) to {{'model': ..., 'weight': ...}}, got "
                            f"{checks.describe(blend)}")
        out = {}
        for key, plan in blend.items():
            digits = isinstance(key, str) and key.isdigit()
            if not digits and (isinstance(key, bool) or not isinstance(key, (int, np.integer))):
                raise TypeError(f"blend keys must be whole numbers of liked items (int or digits), got {key!r}")
            m = checks.integer("blend key", int(key), low=1)
            if m in out:
                raise ValueError(f"blend has n = {m} twice (keys {key!r} and another)")
            if not isinstance(plan, Mapping) or set(plan) != {"model", "weight"} or \
                    plan["model"] not in (*self.personal, "Demographic"):
                raise ValueError(f"blend[{key!r}] must be {{'model': one of {[*self.personal, 'Demographic']}, "
                                 f"'weight': w}}, got {plan!r}")
            w = checks.non_negative_number(f"blend[{key!r}]['weight']", plan["weight"])
            if plan["model"] == "Demographic" and w != 0:
                raise ValueError(f"blend[{key!r}]: 'Demographic' is the base every blend adds to; its weight must "
                                 f"be 0, got {w}")
            out[m] = (plan["model"], w)
        return out

    def plan(self, n: int) -> tuple[str, float]:
        """(model, weight) for a person with ``n`` liked items: the blend of the largest chosen n' <= n."""
        n = checks.non_negative_int("n", n)
        fits = [m for m in self.blend if m <= n]
        return self.blend[max(fits)] if fits else ("Demographic", 0.0)

    def _row(self, name: str, f, *args) -> np.ndarray:
        got = f(*args)
        out = np.asarray(got.toarray() if hasattr(got, "toarray") else got, dtype=np.float64)
        if out.shape not in ((len(self.item_ids),), (1, len(self.item_ids))):
            raise ValueError(f"{name} must give scores of shape (1, {len(self.item_ids)}), got shape {out.shape}")
        if not np.isfinite(out).all():
            raise ValueError(f"{name} gave {int((~np.isfinite(out)).sum())} NaN or infinite scores")
        return out.reshape(1, -1)

    def recommend(self, age=None, gender=None, occupation=None, liked_titles=None, text=None, k: int = 10) -> dict:
        """Top ``k`` for one new person; every argument is optional but one must be given (``BadRequest`` otherwise)."""
        k = checks.positive_int("k", k)
        if all(v is None for v in (age, gender, occupation, liked_titles, text)):
            raise BadRequest("give at least one of age, gender, occupation, liked_titles or text; got none")
        whole = isinstance(age, (int, np.integer)) and not isinstance(age, bool)
        if age is not None and (not whole or not 1 <= age <= MAX_AGE):
            raise BadRequest(f"age must be a whole number of years in 1..{MAX_AGE}, got {age!r}")
        if gender is not None and gender not in GENDERS:
            raise BadRequest(f"gender must be one of {list(GENDERS)}, got {gender!r}")
        if occupation is not None and occupation not in self.occupations:
            raise BadRequest(f"occupation must be one of {self.occupations}, got {occupation!r}")
        person = pd.DataFrame([{"age_bucket": None if age is None else str(age_bucket([age])[0]),
                                "gender": gender, "occupation": occupation}])
        demo, info = self.demographic.scores(person)
        total = standardise_rows(demo)
        method = [f"demographic popularity ({info.level.iloc[0]}: {int(info.cell_users.iloc[0])} users)"]
        liked = np.zeros(0, np.int64) if liked_titles is None else self.title_index.match(liked_titles)
        # n counts films: a title the catalogue lists under two ids is one film the person named
        films = 0 if liked_titles is None else len({tuple(self.title_index.match([t])) for t in liked_titles})
        model, weight = self.plan(films)
        if films and weight > 0:
            rows = sp.csr_matrix((np.ones(len(liked), np.float32), (np.zeros(len(liked), np.int64), liked)),
                                 shape=(1, len(self.item_ids)))
            total = total + weight * standardise_rows(self._row(model, self.personal[model], rows))
            method.append(f"{weight:g} × {model} on {films} liked")
        if text is not None:
            text = checks.text("text", text)
            if len(text) > MAX_TEXT_CHARS:
                raise BadRequest(f"text must be at most MAX_TEXT_CHARS = {MAX_TEXT_CHARS} characters, got {len(text)}")
            if self.text_scorer is None:
                raise ServiceUnavailable("free text needs a text model, and this recommender has none; send "
                                         "demographics or liked_titles instead")
            total = total + self.text_weight * standardise_rows(self._row("text_scorer", self.text_scorer, text))
            method.append(f"{self.text_weight:g} × the text")
        s = total[0]
        allowed = self.catalogue.copy()
        allowed[liked] = False
        order = np.flatnonzero(allowed)[np.argsort(-s[allowed], kind="stable")][:k]
        return {"k": k, "n": films, "method": " + ".join(method),
                "liked": [{"item_id": self._id(i), "title": str(self.titles[i])} for i in liked],
                "items": [{"item_id": self._id(i), "title": str(self.titles[i]), "score": float(s[i])} for i in order]}

    def _id(self, i: int):
        x = self.item_ids[i]
        return int(x) if np.issubdtype(self.item_ids.dtype, np.integer) else str(x)


class NewUserRequest(ColdRequest):
    """A new person: any of age, gender, occupation, liked titles and a sentence, at least one (``ColdRequest``'s
    titles and text, with their limits, and the demographics)."""

    age: StrictInt | None = Field(None, ge=1, le=MAX_AGE, description=f"years, 1..{MAX_AGE}")
    gender: Literal["F", "M"] | None = None
    occupation: str | None = Field(None, max_length=40, examples=["student"])

    @model_validator(mode="after")
    def _something_to_go_on(self):  # replaces ColdRequest's: demographics alone are enough here
        if self.liked_titles is not None and not self.liked_titles:
            raise ValueError("liked_titles must hold at least one title when given")
        if self.text is not None and not self.text.strip():
            raise ValueError("text must be a non-empty sentence when given")
        if all(v is None for v in (self.age, self.gender, self.occupation, self.liked_titles, self.text)):
            raise ValueError("give at least one of age, gender, occupation, liked_titles or text")
        return self


def add_new_user_route(app, recommender: NewUserRecommender):
    """Add ``POST /recommend/new`` answered by ``recommender`` to a FastAPI ``app``; returns the app.

    Introduced in notebooks/14_new_users.ipynb
    """
    if not isinstance(recommender, NewUserRecommender):
        raise TypeError(f"recommender must be a NewUserRecommender, got {checks.describe(recommender)}")

    @app.post("/recommend/new")
    def recommend_new(request: NewUserRequest):
        try:
            return recommender.recommend(request.age, request.gender, request.occupation, request.liked_titles,
                                         request.text, request.k)
        except BadRequest as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        except ServiceUnavailable as e:
            raise HTTPException(status_code=503, detail=str(e)) from None

    return app


def create_new_user_app(recommender: NewUserRecommender):
    """A FastAPI app with ``GET /health`` and ``POST /recommend/new`` (serve it with ``service.running``).

    Introduced in notebooks/14_new_users.ipynb
    """
    app = FastAPI(title="recsuite new users", version="1", summary="Lesson 14's recommender for new users.")

    @app.get("/health")
    def health():
        return {"status": "ok", "n_items": int(len(recommender.item_ids)),
                "blend": {str(n): {"model": m, "weight": w} for n, (m, w) in sorted(recommender.blend.items())}}

    return add_new_user_route(app, recommender)
