"""Semantic item and user vectors from a sentence encoder, cached on disk.

A sentence encoder (all-MiniLM-L6-v2 by default, Wang et al. 2020 / Reimers & Gurevych 2019) reads a short
text per item (title, year, genres) and returns a unit vector; cosine similarity between vectors then
stands for similarity of meaning. Users are represented by the mean of their history's item vectors.

Encoding uses ``transformers`` directly (mean pooling over the attention mask, as the model card says), so
any Hugging Face encoder id or local directory works; ``sentence-transformers`` is only the benchmark peer.

Later lessons get the vectors through three cache-or-compute entry points, with the defaults notebook 02 chose
on validation: ``item_vectors()`` (protocol item order), ``user_profiles`` (``profiles.user_vectors`` adds text profiles) and
``content_scores(history, item_vectors)``.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import cache, checks
from recsuite.core.device import get_device
from recsuite.core.paths import data_home
from recsuite.core.rows import unit_rows
from recsuite.data.movielens import load_movielens_100k
from recsuite.data.split import load_protocol, resolve_protocol
from recsuite.evaluation import metrics
from recsuite.evaluation.selection import one_se_rule
from recsuite.models.base import Scorer
from recsuite.models.encoders import (
    DEFAULT_MODEL,
    check_max_length,
    encode_batches,
    model_identity,
    precision,
)

# Item-text templates. Fields: {title} (leading article restored, "Usual Suspects, The" -> "The Usual
# Suspects"), {raw_title} (as in the data), {year}, {genres} (comma-separated). A part in [square brackets]
# is dropped when a field inside it is missing (no year, no genres), so no "()" or "Genres: ." is left over.
TEMPLATES = {
    "title": "{title}",
    "title_genres": "{title}[. Genres: {genres}]",
    "title_year_genres": "{title}[ ({year})][. Genres: {genres}]",
}
DEFAULT_TEMPLATE = "title_year_genres"
POOLING = "mean"
#: Tokens kept per text when ``max_length`` is None (or the model's limit, when that is shorter).
_CACHE_VERSION = 1

_ARTICLE = re.compile(r"^(?P<head>.+), (?P<art>The|A|An|Il|La|Le|Les|L'|El|Los|Las|Das|Der|Die|Det|Den)$")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)\}")


def natural_title(title: str) -> str:
    """``title`` with a MovieLens trailing article moved to the front: "Godfather, The" -> "The Godfather".

    MovieLens moves leading articles to the end; an encoder reads the natural order better. Surrounding
    whitespace is removed.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    title = checks.text("title", title, empty=True)
    m = _ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    art = m.group("art")
    return f"{art}{'' if art.endswith(chr(39)) else ' '}{m.group('head')}"


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def genre_list(genres, name: str = "genres") -> list[str]:
    """An item's genres as a list of names, from a list (the loaders' form) or a ``"Action|Crime"`` string.

    NA, None and an empty string or list mean no genres; anything else is refused with ``name`` in the error.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if _is_missing(genres):
        return []
    if isinstance(genres, str):
        return [g.strip() for g in genres.split("|") if g.strip()]
    if isinstance(genres, (list, tuple, np.ndarray, pd.Series)):
        out = list(genres)
        bad = [g for g in out if not isinstance(g, str)]
        if bad:
            raise TypeError(f"{name} must hold str genre names, got {bad[:3]!r}")
        return [g.strip() for g in out if g.strip()]
    raise TypeError(f"{name} must be a list of str or a '|'-separated str, got {checks.describe(genres)}")


def _year_text(year, row: int) -> str:
    if _is_missing(year):
        return ""
    if isinstance(year, (bool, np.bool_)) or not isinstance(year, (int, float, np.integer, np.floating)):
        raise TypeError(f"items_df year at row {row} must be an int or NA, got {checks.describe(year)}")
    if not float(year).is_integer():
        raise ValueError(f"items_df year at row {row} must be a whole number or NA, got {year!r}")
    return str(int(year))


def _render(template: str, fields: dict) -> str:
    def optional(m: re.Match) -> str:
        inner = m.group(1)
        names = _FIELD.findall(inner)
        return "" if any(not fields.get(n) for n in names) else inner.format(**fields)

    text = _OPTIONAL.sub(optional, template)
    return text.format(**fields)


def item_text(items_df: pd.DataFrame, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One text per item (in ``items_df`` row order) from a template over title, year and genres.

    ``template`` is a name in ``TEMPLATES`` or a format string with fields ``{title}``, ``{raw_title}``,
    ``{year}`` and ``{genres}`` (a list or a ``"Action|Crime"`` string, see ``genre_list``); a part in
    ``[...]`` is dropped when a field in it is missing, so a missing year (NA) or an empty genre list leaves
    no stray punctuation. With the default ``"title_year_genres"``, Toy Story reads ``"Toy Story (1995).
    Genres: Animation, Children's, Comedy"``. A missing title is refused (ValueError naming the row), never
    written as a word.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    checks.columns("items_df", items_df, ["title", "year", "genres"])
    if not isinstance(template, str):
        raise TypeError(
            f"template must be a name in {sorted(TEMPLATES)} or a format string, got {checks.describe(template)}"
        )
    fmt = TEMPLATES.get(template, template)
    try:  # every replacement field must be a name: "{}" or "{0}" would fail deep in str.format
        names = [f for _, f, _, _ in string.Formatter().parse(_OPTIONAL.sub(r"\1", fmt)) if f is not None]
    except ValueError as err:
        raise ValueError(f"template must be a valid format string, got {template!r} ({err})") from None
    if any(not n.isidentifier() for n in names):
        raise ValueError(f"template may use only the named fields {{title}}, {{raw_title}}, {{year}}, {{genres}}, "
                         f"got {template!r}")
    unknown = set(_FIELD.findall(fmt)) - {"title", "raw_title", "year", "genres"}
    if unknown or not _FIELD.findall(fmt):
        raise ValueError(
            f"template must be a name in {sorted(TEMPLATES)} or a format string using "
            f"{{title}}, {{raw_title}}, {{year}}, {{genres}}; got {template!r}"
        )
    out = []
    for row, (title, year, genres) in enumerate(zip(items_df["title"], items_df["year"], items_df["genres"])):
        if _is_missing(title) or (isinstance(title, str) and not title.strip()):
            raise ValueError(
                f"items_df has a missing title at row {row} (got {title!r}); expected a title for every item, "
                "drop or fill such rows first"
            )
        if not isinstance(title, str):
            raise TypeError(f"items_df title at row {row} must be a str, got {checks.describe(title)}")
        fields = {
            "title": natural_title(title),
            "raw_title": title.strip(),
            "year": _year_text(year, row),
            "genres": ", ".join(genre_list(genres, f"items_df genres at row {row}")),
        }
        out.append(_render(fmt, fields))
    return out


# ----------------------------------------------------------------------------------------------- encoding


def _texts_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _check_cache_dir(cache_dir):
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder (str or path) or None, got {checks.describe(cache_dir)}")
    if cache_dir is not None and not str(cache_dir).strip():
        raise ValueError(f"cache_dir must be a folder path or None, got {cache_dir!r}")
    return cache_dir


def embedding_cache_path(
    texts, model=DEFAULT_MODEL, max_length=None, normalize=True, device="auto", cache_dir=None
) -> Path:
    """The file ``encode_texts`` reads and writes for these arguments.

    The name hashes the model's identity (source and file fingerprint), the texts, ``max_length``,
    ``normalize``, the pooling and the precision (``encoders.precision``: fp32, or bf16 autocast on a CUDA
    GPU that has it), so any change to the texts (a new template) or to the model gives a new file, never
    stale vectors.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    texts = checks.texts("texts", texts)
    source, _, fingerprint = model_identity(model)
    max_length = check_max_length(max_length, model)
    normalize = checks.flag("normalize", normalize)
    cache_dir = _check_cache_dir(cache_dir)
    key = _cache_key(texts, source, fingerprint, max_length, normalize, precision(get_device(device)))
    return _cache_file(key, source, cache_dir)


def _cache_key(texts, source, fingerprint, max_length, normalize, precision) -> dict:
    return {
        "version": _CACHE_VERSION,
        "model": source,
        "fingerprint": fingerprint,
        "texts": _texts_digest(texts),
        "n": len(texts),
        "max_length": max_length,
        "normalize": normalize,
        "pooling": POOLING,
        "precision": precision,
    }


def _cache_file(key: dict, source: str, cache_dir) -> Path:
    if cache_dir is None:
        cache_dir = data_home() / "embeddings"
    digest = cache.key_digest(key, 24)
    # A saved model often sits in a folder called "model"; its parent's name says which one it is.
    parts = Path(source).parts[-2:] if Path(source).is_absolute() else (Path(source).name or source,)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-")[-40:].strip("-") or "model"
    return Path(cache_dir) / f"{slug}-{digest}.npz"


def _read_cache(path: Path, key: dict):
    vectors = cache.read_array(path, key, "vectors")
    if (vectors is None or vectors.ndim != 2 or vectors.shape[0] != key["n"]
            or not np.issubdtype(vectors.dtype, np.floating) or not np.isfinite(vectors).all()):
        return None  # absent, truncated, damaged or foreign: recompute and overwrite
    return vectors.astype(np.float32, copy=False)


def _write_cache(path: Path, key: dict, vectors: np.ndarray) -> None:
    cache.write_or_warn(path, key, "vectors", vectors, what="embedding cache", stacklevel=4)


def encode_texts(
    texts,
    model: str | os.PathLike = DEFAULT_MODEL,
    batch_size: int = 64,
    device="auto",
    cache: bool = True,
    normalize: bool = True,
    max_length: int | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    compute: bool = True,
) -> np.ndarray:
    """Float32 ``(n, d)`` sentence embeddings of ``texts``, L2-normalised (unless ``normalize=False``).

    e(x) = mean_pool(encoder(x)) / ||mean_pool(encoder(x))||  (Reimers & Gurevych 2019, Sentence-BERT).
    ``model`` is a local directory or a Hugging Face id (offline: already cached); texts are tokenised once,
    truncated to ``max_length`` tokens (None: 256, or the model's limit when shorter; more than the model's
    ``max_position_embeddings`` is refused) and run in batches of similar token length (longest first, padded
    only to each batch's maximum) by ``encoders.encode_batches``, at ``encoders.precision`` (bf16 autocast on
    a CUDA GPU that has it, else fp32). Rows come back in the order of ``texts``. With ``cache=True`` the
    result is stored under ``cache_dir`` (default ``datasets/embeddings``) in a file keyed by model and texts,
    see ``embedding_cache_path``; a hit runs no model at all, a damaged file is recomputed and overwritten,
    and a folder that cannot be written gives a ``RuntimeWarning`` naming the file (the vectors are returned).
    With ``compute=False`` only the cache is read: a missing, damaged or foreign file raises
    ``FileNotFoundError`` naming it, and no model is loaded.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    texts = checks.texts("texts", texts)
    batch_size = checks.positive_int("batch_size", batch_size)
    use_cache = checks.flag("cache", cache)
    if not checks.flag("compute", compute) and not use_cache:
        raise ValueError("compute=False reads the cache only; it needs cache=True, got cache=False")
    normalize = checks.flag("normalize", normalize)
    progress = checks.flag("progress", progress)
    cache_dir = _check_cache_dir(cache_dir)
    source, _, fingerprint = model_identity(model)
    max_length = check_max_length(max_length, model)
    dev = get_device(device)
    key = _cache_key(texts, source, fingerprint, max_length, normalize, precision(dev))
    path = _cache_file(key, source, cache_dir) if use_cache else None
    if path is not None:
        hit = _read_cache(path, key)
        if hit is not None:
            return hit
    if not compute:
        raise FileNotFoundError(f"the embedding cache {path} is missing, damaged or built for other texts or another "
                                "model, and compute=False")
    out = encode_batches(texts, model, batch_size=batch_size, device=dev, normalize=normalize,
                         max_length=max_length, progress=progress)
    if path is not None:
        _write_cache(path, key, out)
    return out


# ----------------------------------------------------------------------------------------------- vectors


def _check_vectors(name: str, vectors) -> np.ndarray:
    return checks.array(name, vectors, ndim=2, dtype=np.float32, empty=False)


def center(vectors, mean=None) -> np.ndarray:
    """Subtract the mean vector, then L2-normalise each row again.

    Sentence-encoder embeddings are anisotropic: they crowd in a narrow cone, so even unrelated items have
    cosine well above 0 (Ethayarajh 2019, "How Contextual are Contextualized Word Representations?").
    Removing the common mean direction is the first step of whitening (Su et al. 2021, "Whitening Sentence
    Representations for Better Semantics and Faster Retrieval"; Mu & Viswanath 2018, "All-but-the-Top")
    and spreads the cosines around 0. Pass ``mean`` to centre new vectors (cold items, profiles) with the
    mean of the catalogue they will be compared with.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    v = _check_vectors("vectors", vectors)
    if mean is None:
        mu = v.mean(axis=0, dtype=np.float64).astype(np.float32)
    else:
        mu = checks.array("mean", mean, ndim=1, dtype=np.float32, shape=(v.shape[1],))
    return unit_rows(v - mu)


_center = center  # user_profiles has an argument named ``center``


def user_profiles(history, item_vectors, center: bool = False) -> np.ndarray:
    """``(n_users, d)`` float32 profiles: the L2-normalised mean of each user's history item vectors.

    ``p_u = normalise(sum_{i in H(u)} v_i / |H(u)|)``, computed for all users at once as a sparse product
    (stored values are ignored, every non-zero entry counts once). With ``center=True`` the item
    vectors are centred first (see ``center``). A user with an empty history gets the zero vector, which
    scores 0 against every item; give such users another recommender (popularity) or a text profile.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if not sp.issparse(history) or history.ndim != 2:
        raise TypeError(
            f"history must be a scipy.sparse users x items matrix, got {checks.describe(history)}"
        )
    center = checks.flag("center", center)
    v = _check_vectors("item_vectors", item_vectors)
    if history.shape[1] != v.shape[0]:
        raise ValueError(
            f"history has {history.shape[1]} item columns but item_vectors has {v.shape[0]} rows; "
            "they must match (item index = row of item_vectors)"
        )
    if center:
        v = _center(v)
    x = checks.sparse("history", history, nonnegative=True)  # a negative weight is no interaction to average
    x.eliminate_zeros()  # a stored 0 is not an interaction
    x.data[:] = 1.0
    counts = np.asarray(x.sum(axis=1), dtype=np.float32)
    sums = np.asarray(x @ v, dtype=np.float32)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return unit_rows(means)


def explain(user_history_items, item: int, item_vectors, top: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` history items most similar to ``item``, with their cosine similarity (highest first).

    With a mean profile, score(u, i) = cos(p_u, v_i) is proportional to sum_{j in H(u)} cos(v_j, v_i) (unit
    vectors), so each history item's share of the score is its cosine with the recommended item: these are
    the items that contributed most. Returns ``(history item indices, cosines)``.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    v = _check_vectors("item_vectors", item_vectors)
    if sp.issparse(user_history_items) or isinstance(user_history_items, (str, bytes, dict, set)):
        raise TypeError(
            f"user_history_items must be a 1-D array of item indices, got {checks.describe(user_history_items)}"
        )
    hist = checks.indices("user_history_items", np.asarray(user_history_items).ravel(), v.shape[0], what="item")
    if hist.size == 0:
        raise ValueError("user_history_items must hold at least one item index, got an empty array")
    item = checks.integer("item", item, low=0, high=v.shape[0] - 1)
    top = checks.positive_int("top", top)
    hist = np.unique(hist)
    unit = unit_rows(v[np.append(hist, item)])
    sims = unit[:-1] @ unit[-1]
    best = np.argsort(-sims, kind="stable")[:top]
    return hist[best].astype(np.int64), sims[best].astype(np.float32)


# ----------------------------------------------------------------------------------------------- lesson artefacts

# The library's defaults; what the lessons use is what notebook 02 chose on valid (``content_setting``).
DEFAULT_CENTER = True
#: The item-text templates notebook 02 compares on valid (with and without centring).
CONTENT_TEMPLATES = ("title", "title_genres", "title_year_genres")


def _raw_item_ids(index) -> np.ndarray:
    if index is None:
        return load_protocol().index.item_ids
    ids = getattr(index, "item_ids", index)  # an IndexMap or the raw ids themselves
    if isinstance(ids, (str, bytes)) or sp.issparse(ids):
        raise TypeError(f"index must be an IndexMap or a 1-D array of raw item ids (int or str), got {checks.describe(ids)}")
    ids = np.asarray(ids)
    is_str = ids.dtype.kind in "OU" and all(isinstance(i, str) for i in ids.ravel())
    if ids.ndim != 1 or ids.size == 0 or not (np.issubdtype(ids.dtype, np.integer) or is_str):
        raise ValueError(
            f"index must be an IndexMap or a non-empty 1-D array of raw item ids (int or str), got {ids.dtype} {ids.shape}"
        )
    if len(np.unique(ids)) != len(ids):
        raise ValueError("index must list each raw item id once (one row per item), got repeated ids")
    return ids


def item_vectors(
    template: str = DEFAULT_TEMPLATE,
    model: str | os.PathLike = DEFAULT_MODEL,
    index=None,
    items: pd.DataFrame | None = None,
    device="auto",
    batch_size: int = 64,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    compute: bool = True,
) -> np.ndarray:
    """Float32 ``(n_items, d)`` unit item vectors, row ``i`` = item index ``i`` of the protocol (cache-or-compute).

    The texts are ``item_text(items, template)`` taken in the order of ``index`` (an ``IndexMap`` or raw
    item ids; default ``load_protocol().index``) over ``items`` (default: MovieLens-100K's item table), and
    are encoded by ``encode_texts`` through its disk cache: the first call encodes (a few seconds on a CPU
    for MiniLM), later calls and later lessons read the same file, and a missing cache is rebuilt with
    identical vectors (``compute=False``: read the cache only, ``FileNotFoundError`` when it cannot). The
    vectors are *not* centred; ``center(item_vectors())`` gives the centred ones.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    ids = _raw_item_ids(index)
    if items is None:
        items = load_movielens_100k().items
    checks.columns("items", items, ["item_id", "title", "year", "genres"])
    if items["item_id"].duplicated().any():
        raise ValueError("items has repeated item_id values; expected one row per item")
    table = items.set_index("item_id")
    missing = pd.Index(np.unique(ids)).difference(table.index)
    if len(missing):
        raise ValueError(
            f"index has raw item ids that items lacks, e.g. {missing[:5].tolist()} ({len(missing)} in all); "
            "expected every indexed item to have a row in items"
        )
    texts = item_text(table.loc[ids].reset_index(), template)
    return encode_texts(
        texts, model, batch_size=batch_size, device=device, progress=progress, cache_dir=cache_dir, compute=compute
    )


def content_scores(history, item_vectors, center: bool = DEFAULT_CENTER) -> np.ndarray:
    """Float32 ``(n_users, n_items)`` content-based scores: cos(p_u, v_i) with p_u the mean-profile of ``user_profiles``.

    score(u, i) = p_u . v_i / ||v_i||, p_u = normalise(mean_{j in H(u)} v_j) (Lops et al. 2011,
    "Content-based Recommender Systems: State of the Art and Trends"); with ``center=True`` (the
    default, best on validation in notebook 02) both sides use the centred item vectors. A user with an
    empty history scores 0 everywhere. Ranking, masking and the catalogue are the protocol's job
    (``Protocol.evaluate``).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    center = checks.flag("center", center)
    v = _check_vectors("item_vectors", item_vectors)
    profiles = user_profiles(history, v, center=center)
    items_unit = _center(v) if center else unit_rows(v)
    return np.asarray(profiles @ items_unit.T, dtype=np.float32)


class ContentModel(Scorer):
    """The content recommender as a ``Scorer``: ``content_scores`` of each user's history against ``item_vectors``.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """

    def __init__(self, history, item_vectors, center: bool = DEFAULT_CENTER):
        self.history = checks.sparse("history", history)
        self.item_vectors = _check_vectors("item_vectors", item_vectors)
        if self.history.shape[1] != self.item_vectors.shape[0]:
            raise ValueError(f"history has {self.history.shape[1]} item columns but item_vectors has "
                             f"{self.item_vectors.shape[0]} rows; they must match (item index = row of item_vectors)")
        self.center = checks.flag("center", center)

    @property
    def shape(self) -> tuple[int, int]:
        return self.history.shape

    def scores(self, user_idx=None) -> np.ndarray:
        return content_scores(self.history[self._users(user_idx)], self.item_vectors, center=self.center)


def cosine_scores(user_vectors, item_vectors, center: bool = DEFAULT_CENTER) -> np.ndarray:
    """Float32 ``(n_users, n_items)`` cosine between every user vector and every item vector.

    For user vectors that live in the encoder's space on their own, such as encoded text profiles. With
    ``center=True`` each side is centred with *its own* mean first (see ``center``): profile texts and item
    texts are two populations with different common directions, and removing each one's is what lets
    their cosines rank (notebook 02 measures it).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    center = checks.flag("center", center)
    u = _check_vectors("user_vectors", user_vectors)
    v = _check_vectors("item_vectors", item_vectors)
    if u.shape[1] != v.shape[1]:
        raise ValueError(
            f"user_vectors has dimension {u.shape[1]} but item_vectors has {v.shape[1]}; both must come from one encoder"
        )
    if center:
        u, v = _center(u), _center(v)
    else:
        u, v = unit_rows(u), unit_rows(v)
    return np.asarray(u @ v.T, dtype=np.float32)


def tune_content(protocol=None, seed: int = 0, templates=CONTENT_TEMPLATES, model: str | os.PathLike = DEFAULT_MODEL,
                 device="auto", progress: bool = False):
    """Choose the item-text template and the centring of the content recommender on valid (notebook 02's search).

    Every template (a name in ``TEMPLATES`` or a format string, as ``item_text`` takes) x {raw, centred}
    ranks valid with ``content_scores`` over the train history; the choice
    is the best valid NDCG@10 rounded to three decimals, ties to the earlier setting of the grid (shorter
    template, raw before centred), so another CPU makes the same choice (``recsuite.evaluation.selection``). Returns
    ``(table, {"template": ..., "center": ...})``.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    seed = checks.seed("seed", seed)
    templates = checks.texts("templates", templates)
    if len(set(templates)) != len(templates):
        raise ValueError(f"templates must not repeat a template, got {templates!r}")
    for t in templates:
        item_text(pd.DataFrame({"title": ["x"], "year": [None], "genres": [[]]}), t)  # refuses a bad one now
    protocol = resolve_protocol(protocol)
    rows = []
    for template in templates:
        v = item_vectors(template, model, protocol.index, device=device, progress=progress)
        for center in (False, True):
            top = protocol.rank(content_scores(protocol.history("valid"), v, center=center), "valid", 10)
            per_user = metrics.per_user_metrics(top, protocol.csr("valid"), 10)
            rows.append({"template": template, "center": center, "ndcg@10": float(per_user["ndcg@10"].mean()),
                         "recall@10": float(per_user["recall@10"].mean())})
    table = pd.DataFrame(rows)
    chosen = one_se_rule(table, "ndcg@10", se=0.0)
    table["chosen"] = table.index == chosen
    return table, {"template": str(table.template[chosen]), "center": bool(table.center[chosen])}
