"""Text user profiles: a user's attributes and history written as a sentence, to be encoded like items.

Two backends. ``"template"`` (the default) is deterministic and offline: statistics over the history
(top genres, typical decade, most recent titles) poured into a template. ``"hf"`` asks a causal language model
(``recsuite.models.causal_lm.HFGenerator``) to write the profile from a prompt filled with the same fields.
``user_vectors`` turns a protocol's histories into user vectors of either kind: the mean of the history's
item vectors (``recsuite.models.semantic``) or the encoded profile text.

Introduced in notebooks/02_llm_semantic_features.ipynb
"""

from __future__ import annotations

import os
import re
import string

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.data.movielens import load_movielens_100k
from recsuite.data.split import EVAL_SETS, Protocol, load_protocol
from recsuite.models import semantic
from recsuite.models.encoders import DEFAULT_MODEL

GENRE_PHRASES = {
    "Action": "action",
    "Adventure": "adventure",
    "Animation": "animation",
    "Children's": "children's films",
    "Comedy": "comedies",
    "Crime": "crime",
    "Documentary": "documentaries",
    "Drama": "dramas",
    "Fantasy": "fantasy",
    "Film-Noir": "film noir",
    "Horror": "horror",
    "Musical": "musicals",
    "Mystery": "mysteries",
    "Romance": "romance",
    "Sci-Fi": "sci-fi",
    "Thriller": "thrillers",
    "War": "war films",
    "Western": "westerns",
}
# ML-100K occupations that are not nouns for a person.
OCCUPATION_PHRASES = {
    "entertainment": "entertainment worker",
    "healthcare": "healthcare worker",
    "marketing": "marketing professional",
    "none": "person without an occupation",
    "other": "person",
    "": "person",
}
GENDER_WORDS = {"M": "man", "F": "woman"}

# Fields: {person} ("A 24-year-old technician"), {age}, {gender}, {occupation}, {n_items}, {top_genres},
# {decade}, {recent}. {person} carries the right article ("An 18-year-old ...", "An engineer").
PROFILE_TEMPLATE = "{person} who has watched {n_items}, mostly {top_genres}{decade}; recently watched {recent}."
EMPTY_PROFILE_TEMPLATE = "{person} who has not watched any films yet."

PROMPT_TEMPLATE = (
    "Write a one-sentence profile of this viewer's taste in films, for a movie recommender.\n"
    "Viewer: {age}-year-old {gender}, occupation: {occupation}.\n"
    "Favourite genres: {top_genres}.\n"
    "Films watched, newest first:\n"
    "{history}\n"
    "Profile:"
)


def _item_label(title, year) -> str:
    title = semantic.natural_title(title)
    return title if pd.isna(year) else f"{title} ({int(year)})"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _article(phrase: str) -> str:
    m = re.match(r"(\d+)", phrase)
    if m:  # "an" before ages read with a vowel sound: 8, 11, 18, 80-89, 800...
        n = m.group(1)
        return "An" if n.startswith("8") or n in ("11", "18") or (len(n) in (5, 6) and n[:2] in ("11", "18")) else "A"
    return "An" if phrase[:1].lower() in "aeiou" else "A"


def _check_ages(name: str, ages) -> None:
    # An age reads as "24-year-old": a fraction, a negative or a word would be written wrongly or crash.
    for age in ages:
        if age is None or (np.ndim(age) == 0 and pd.isna(age)):
            continue
        if isinstance(age, (bool, np.bool_)) or not isinstance(age, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} age must be a whole number of years or NA, got {checks.describe(age)}")
        if not float(age).is_integer() or not 0 <= age <= 150:
            raise ValueError(f"{name} age must be a whole number of years in [0, 150] or NA, got {age!r}")


def _person(age, occupation) -> str:
    occ = OCCUPATION_PHRASES.get(occupation, occupation) if isinstance(occupation, str) else "person"
    phrase = occ if age is None or pd.isna(age) else f"{int(age)}-year-old {occ}"
    return f"{_article(phrase)} {phrase}"


def _history_stats(inter: pd.DataFrame, items: pd.DataFrame, top_genres: int, max_recent: int) -> pd.DataFrame:
    """Per-user statistics, vectorised with groupby: n_items, top genres, median decade, recent items."""
    if not {"item_id", "title", "year", "genres"} <= set(items.columns):
        raise ValueError(f"items_df must have columns item_id, title, year, genres; got {list(items.columns)}")
    repeated = items["item_id"][items["item_id"].duplicated()].unique()
    if len(repeated):
        raise ValueError(f"items_df repeats item_id values, e.g. {repeated[:5].tolist()}; expected one row per item")
    meta = items.set_index("item_id")
    titles = meta["title"]
    missing_title = titles.isna() | ~titles.map(lambda t: isinstance(t, str) and bool(t.strip()))
    if missing_title.any():
        raise ValueError(
            f"items_df has missing or non-str titles, e.g. item_id {missing_title[missing_title].index[:5].tolist()}; "
            "expected a title for every item"
        )
    genres = [semantic.genre_list(g, f"items_df genres of item_id {i}") for i, g in meta["genres"].items()]
    meta = meta.assign(genres=pd.Series(genres, index=meta.index, dtype=object))
    missing = pd.Index(inter["item_id"].unique()).difference(meta.index)
    if len(missing):
        raise ValueError(f"interactions_df has item_ids missing from items_df, e.g. {missing[:5].tolist()}")
    df = inter[["user_id", "item_id", "timestamp"]].drop_duplicates(["user_id", "item_id"], keep="last")
    df = df.join(meta[["title", "year", "genres"]], on="item_id")
    stats = pd.DataFrame(index=pd.Index(df["user_id"].unique(), name="user_id"))
    stats["n_items"] = df.groupby("user_id").size()

    genres = df[["user_id", "genres"]].explode("genres").dropna()
    counts = genres.groupby(["user_id", "genres"]).size().rename("count").reset_index()
    # Most frequent first; ties broken alphabetically so that the text never depends on row order.
    counts = counts.sort_values(["user_id", "count", "genres"], ascending=[True, False, True])
    top = counts.groupby("user_id").head(top_genres)
    stats["top_genres"] = top.groupby("user_id")["genres"].agg(list)

    years = df.dropna(subset=["year"])
    stats["decade"] = (years.groupby("user_id")["year"].median() // 10 * 10).astype("Int64")

    recent = df.sort_values(["user_id", "timestamp", "item_id"], ascending=[True, False, True], kind="stable")
    recent = recent.groupby("user_id").head(max_recent)
    recent = recent.assign(label=[_item_label(t, y) for t, y in zip(recent["title"], recent["year"])])
    stats["recent"] = recent.groupby("user_id")["label"].agg(list)
    stats["recent_genres"] = recent.groupby("user_id")["genres"].agg(list)
    return stats


def _fields(user: dict, st) -> dict:
    age, occupation = user.get("age"), user.get("occupation")
    n = 0 if st is None else int(st["n_items"])
    genres = [] if st is None or not isinstance(st["top_genres"], list) else st["top_genres"]
    decade = None if st is None else st["decade"]
    recent = [] if st is None or not isinstance(st["recent"], list) else st["recent"]
    return {
        "person": _person(age, occupation),
        "age": "unknown-age" if age is None or pd.isna(age) else str(int(age)),
        "gender": GENDER_WORDS.get(user.get("gender"), "person"),
        "occupation": occupation if isinstance(occupation, str) and occupation else "unknown",
        "n": n,
        "n_items": f"{n} film{'s' if n != 1 else ''}",
        "top_genres": _join([GENRE_PHRASES.get(g, g.lower()) for g in genres]) or "films of no listed genre",
        "top_genres_raw": ", ".join(genres) or "none",
        "decade": "" if decade is None or pd.isna(decade) else f" from the {int(decade)}s",
        "recent": "; ".join(recent),
        "history": "\n".join(
            f"- {label}: {', '.join(g) or 'no genre'}"
            for label, g in zip(recent, [] if st is None else st["recent_genres"])
        ),
    }


def _compose(fields: dict, template: str, empty_template: str) -> str:
    return (template if fields["n"] > 0 else empty_template).format(**fields)


def check_templates(template, empty_template) -> None:
    for name, value in (("template", template), ("empty_template", empty_template)):
        checks.text(name, value)
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as err:
            raise ValueError(f"{name} must be a valid format string, got {value!r} ({err})") from None
        unknown = fields - _PROFILE_FIELDS
        if unknown:
            raise ValueError(
                f"{name} uses unknown fields {sorted(unknown)}; expected fields from {sorted(_PROFILE_FIELDS)}"
            )


_PROFILE_FIELDS = {"person", "age", "gender", "occupation", "n", "n_items", "top_genres", "top_genres_raw",
                   "decade", "recent", "history"}


def profile_text(
    user_row,
    history_items_df: pd.DataFrame,
    max_recent: int = 5,
    top_genres: int = 2,
    template: str = PROFILE_TEMPLATE,
    empty_template: str = EMPTY_PROFILE_TEMPLATE,
) -> str:
    """One user's profile text from their attributes and history (the offline ``"template"`` backend).

    ``user_row``: a mapping or Series with ``age`` and ``occupation`` (``gender`` optional; missing values
    are left out of the sentence). ``history_items_df``: the items the user interacted with, columns
    ``item_id, title, year, genres`` and ``timestamp`` (without it, rows are taken as oldest to newest).
    Gives e.g. "A 24-year-old technician who has watched 12 films, mostly sci-fi and thrillers from the
    1990s; recently watched Contact (1997); Fargo (1996)." The same text ``profile_texts`` writes.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if not isinstance(user_row, (dict, pd.Series)):
        raise TypeError(f"user_row must be a dict or pandas Series, got {checks.describe(user_row)}")
    checks.columns("history_items_df", history_items_df, ["title", "year", "genres"])
    check_templates(template, empty_template)
    max_recent = checks.positive_int("max_recent", max_recent)
    top_genres = checks.positive_int("top_genres", top_genres)
    user = dict(user_row)
    _check_ages("user_row", [user.get("age")])
    hist = history_items_df
    if "item_id" not in hist.columns:
        hist = hist.assign(item_id=np.arange(len(hist)))
    if "timestamp" not in hist.columns:
        hist = hist.assign(timestamp=np.arange(len(hist)))
    if len(hist) == 0:
        return _compose(_fields(user, None), template, empty_template)
    inter = hist.assign(user_id=0)[["user_id", "item_id", "timestamp"]]
    stats = _history_stats(inter, hist, top_genres, max_recent)
    return _compose(_fields(user, stats.iloc[0]), template, empty_template)


def _is_generator(generator) -> bool:
    # any text writer with HFGenerator's two methods (recsuite.models.causal_lm): prompt(fields) and generate(prompts)
    return callable(getattr(generator, "prompt", None)) and callable(getattr(generator, "generate", None))


def profile_texts(
    users_df: pd.DataFrame,
    interactions_df: pd.DataFrame,
    items_df: pd.DataFrame,
    backend: str = "template",
    max_recent: int = 5,
    top_genres: int = 2,
    generator=None,
    template: str = PROFILE_TEMPLATE,
    empty_template: str = EMPTY_PROFILE_TEMPLATE,
    progress: bool = True,
) -> pd.Series:
    """Profile texts for every user in ``users_df``, as a Series indexed by ``user_id`` (same order).

    Pass only the interactions a model may see (the training split), or the profile leaks the test set.
    ``backend="template"`` writes ``PROFILE_TEMPLATE`` from history statistics computed for all users at
    once; ``backend="hf"`` fills ``generator.prompt_template`` with the same statistics and lets
    ``generator`` (an ``HFGenerator``) write the text. Users without history get ``EMPTY_PROFILE_TEMPLATE``
    (template backend) or a prompt with an empty film list (hf backend).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    checks.columns("users_df", users_df, ["user_id"])
    checks.columns("interactions_df", interactions_df, ["user_id", "item_id", "timestamp"])
    checks.columns("items_df", items_df, ["item_id", "title", "year", "genres"])
    checks.one_of("backend", backend, ("template", "hf"))
    if backend == "hf" and generator is None:
        raise ValueError("backend='hf' needs generator=HFGenerator(...), got None")
    if backend == "hf" and not _is_generator(generator):
        raise TypeError(f"backend='hf' needs generator=HFGenerator(...), got {checks.describe(generator)}")
    if backend == "template" and generator is not None:
        raise ValueError("generator is used only with backend='hf'; pass backend='hf' or leave generator=None")
    progress = checks.flag("progress", progress)
    check_templates(template, empty_template)
    if interactions_df[["user_id", "item_id", "timestamp"]].isna().any().any():
        raise ValueError(
            "interactions_df holds missing user_id, item_id or timestamp values; expected them on every row"
        )
    if "age" in users_df.columns:
        _check_ages("users_df", users_df["age"])
    max_recent = checks.positive_int("max_recent", max_recent)
    top_genres = checks.positive_int("top_genres", top_genres)
    if users_df["user_id"].duplicated().any():
        raise ValueError("users_df has repeated user_id values; expected one row per user")
    stats = _history_stats(interactions_df, items_df, top_genres, max_recent)
    users = users_df.set_index("user_id", drop=False)
    fields = [
        _fields(row, stats.loc[uid] if uid in stats.index else None)
        for uid, row in zip(users.index, users.to_dict("records"))
    ]
    if backend == "template":
        texts = [_compose(f, template, empty_template) for f in fields]
    else:
        texts = generator.generate([generator.prompt(f) for f in fields], progress=progress)
    return pd.Series(texts, index=pd.Index(users.index, name="user_id"), name="profile")


# ----------------------------------------------------------------------------------------------- user vectors

USER_KINDS = ("item-profile", "text-profile")


def user_vectors(
    eval_set: str,
    kind: str = "item-profile",
    template: str = semantic.DEFAULT_TEMPLATE,
    model: str | os.PathLike = DEFAULT_MODEL,
    center: bool = semantic.DEFAULT_CENTER,
    protocol=None,
    data=None,
    generator=None,
    device="auto",
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Float32 ``(n_users, d)`` user vectors for ranking ``eval_set``, built only from that set's history.

    ``kind="item-profile"``: ``semantic.user_profiles`` of ``protocol.history(eval_set)`` over
    ``semantic.item_vectors(template, model)`` (centred items when ``center``). ``kind="text-profile"``: the
    ``profile_texts`` text of each user over ``protocol.history_frame(eval_set)`` (template backend, or
    ``generator``'s Hugging Face model when given), encoded with ``model``, centred with the profiles' own
    mean when ``center``. Rows follow ``protocol.index.user_ids``. Rank with ``user_vectors(...) @ V.T`` where
    ``V = semantic.center(semantic.item_vectors())`` if ``center`` else ``semantic.item_vectors()``
    (``semantic.cosine_scores``/``semantic.content_scores`` do exactly this). Everything expensive goes
    through the disk caches, so a later lesson gets the same vectors back in seconds. ``protocol`` defaults to
    ``load_protocol()`` and ``data`` (a ``MovieLens``) to MovieLens-100K.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    checks.one_of("eval_set", eval_set, tuple(EVAL_SETS))
    checks.one_of("kind", kind, USER_KINDS)
    center = checks.flag("center", center)
    if kind == "text-profile" and template != semantic.DEFAULT_TEMPLATE:
        raise ValueError(f"template applies to kind='item-profile' only (a text profile is encoded as written), got "
                         f"template={template!r} with kind='text-profile'")
    if kind == "item-profile" and generator is not None:
        raise ValueError("generator is used only with kind='text-profile'; leave it None for 'item-profile'")
    if generator is not None and not _is_generator(generator):
        raise TypeError(f"generator must be an HFGenerator or None, got {checks.describe(generator)}")
    if protocol is None:
        protocol = load_protocol()
    elif not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a recsuite.data.split.Protocol or None, got {checks.describe(protocol)}")
    if data is None:
        data = load_movielens_100k()
    if kind == "item-profile":
        v = semantic.item_vectors(
            template, model, protocol.index, data.items, device=device, progress=progress, cache_dir=cache_dir
        )
        return semantic.user_profiles(protocol.history(eval_set), v, center=center)

    users = data.users
    if not isinstance(users, pd.DataFrame) or "user_id" not in users.columns:
        raise ValueError("data.users must be a DataFrame with a user_id column")
    users = users.drop_duplicates("user_id").set_index("user_id")
    missing = pd.Index(protocol.index.user_ids).difference(users.index)
    if len(missing):
        raise ValueError(f"data.users lacks users of the protocol's index, e.g. {missing[:5].tolist()}")
    users = users.loc[protocol.index.user_ids].reset_index()
    backend = "template" if generator is None else "hf"
    texts = profile_texts(
        users, protocol.history_frame(eval_set), data.items, backend=backend, generator=generator, progress=progress
    )
    t = semantic.encode_texts(texts.tolist(), model, device=device, progress=progress, cache_dir=cache_dir)
    return semantic.center(t) if center else t
