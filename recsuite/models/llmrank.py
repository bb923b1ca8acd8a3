"""A generative language model as a recommender: zero-shot candidate scoring, prompts and faithful explanations.

A causal LM scores a candidate item for a user by the log-likelihood of the item's text as the answer to a
prompt built from the user's history (Hou et al. 2024, *Large Language Models are Zero-Shot Rankers for
Recommender Systems*):

    score(u, i) = log p(text(i) | prompt(u)) = sum_t log p(c_t | prompt(u), c_1 .. c_{t-1}).

``LMScorer`` runs the prompt once per user with the candidates packed after it in the same forward pass, each
seeing only the prompt and itself (the tokens that all the prompts begin with run once per call): the same
numbers as one full forward pass per candidate (``method="naive"``) at a fraction of the cost.
``zero_shot`` scores a user's top-M candidates of another recommender; ``named_titles``/``check_explanation``
test that a generated explanation names only films the user watched or the film recommended.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.core.progress import tqdm
from recsuite.models import semantic
from recsuite.models.base import CandidateScorer
from recsuite.models.causal_lm import CausalLM

HISTORY_MESSAGE = "I have watched these films, oldest first:\n{history}\nName one more film I will enjoy watching next."
LISTWISE_MESSAGE = (
    "I have watched these films, oldest first:\n{history}\n"
    "Which one of these films should I watch next?\n{candidates}\nAnswer with the title only."
)
EXPLAIN_MESSAGE = (
    "Films I liked: {reasons}.\nRecommended film: {item}.\nIn one sentence starting with \"You may like "
    "{item} because\", say what it has in common with the films I liked. Do not name any other film."
)


def _positions(bad: list[int]) -> str:
    return f"{bad[:10]}" + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")


def _check_titles(name: str, titles) -> list[str]:
    """A non-empty list of non-blank str: a missing (None, NaN) or blank title would be scored as a film."""
    if isinstance(titles, str) or not hasattr(titles, "__len__"):
        raise TypeError(f"{name} must be a list of titles (str), got {checks.describe(titles)}")
    titles = titles.tolist() if hasattr(titles, "tolist") else list(titles)
    missing = [i for i, t in enumerate(titles) if not isinstance(t, str) and np.ndim(t) == 0 and pd.isna(t)]
    if missing:
        raise ValueError(f"{name} must hold a title (str) at every position, got a missing value (None/NaN) at "
                         f"position(s) {_positions(missing)}")
    titles = checks.texts(name, titles)
    blank = [i for i, t in enumerate(titles) if not t.strip()]
    if blank:
        raise ValueError(f"{name} must hold non-empty titles, got an empty or blank str at position(s) "
                         f"{_positions(blank)}")
    return titles


def history_message(titles, max_items: int = 10) -> str:
    """The zero-shot prompt for a user: their last ``max_items`` films (oldest first), then the question.

    An empty history, or a missing or blank title in it, is a ValueError: the prompt would ask for "one
    more film" after none.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    titles = _check_titles("titles", titles)
    max_items = checks.positive_int("max_items", max_items)
    return HISTORY_MESSAGE.format(history="\n".join(f"- {t}" for t in titles[-max_items:]))


def listwise_message(titles, candidates, max_items: int = 10) -> str:
    """A listwise prompt: the history, then the candidates numbered in the order given.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    titles = _check_titles("titles", titles)
    candidates = _check_titles("candidates", candidates)
    max_items = checks.positive_int("max_items", max_items)
    return LISTWISE_MESSAGE.format(
        history="\n".join(f"- {t}" for t in titles[-max_items:]),
        candidates="\n".join(f"{j}. {t}" for j, t in enumerate(candidates, 1)),
    )


def explanation_message(reasons, item: str) -> str:
    """Ask for one sentence explaining ``item`` by the history films ``reasons`` (``semantic.explain``'s).

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    reasons = _check_titles("reasons", reasons)
    item = checks.text("item", item)
    if not reasons:
        raise ValueError("reasons must name at least one history film, got an empty list")
    joined = reasons[0] if len(reasons) == 1 else ", ".join(reasons[:-1]) + " and " + reasons[-1]
    return EXPLAIN_MESSAGE.format(reasons=joined, item=item)


@dataclass(frozen=True)
class LogLik:
    """Log-likelihoods of candidate texts: ``total`` (sum over the candidate's tokens) and ``n_tokens``,
    both of shape (n_prompts, n_candidates); ``per_token`` is their ratio (the length-normalised score)."""

    total: np.ndarray
    n_tokens: np.ndarray

    @property
    def per_token(self) -> np.ndarray:
        return self.total / self.n_tokens

    def scores(self, normalise: str = "mean") -> np.ndarray:
        """``"sum"``: the total log-likelihood; ``"mean"``: per token (removes the pull towards short titles)."""
        checks.one_of("normalise", normalise, ("sum", "mean"))
        return self.total if normalise == "sum" else self.per_token


class LMScorer(CausalLM):
    """Log-likelihood of candidate answers under a causal LM, with the prompt's KV cache reused per candidate.

    ``model_name_or_path``: a Hub id (cached), a local folder, a ``.gguf`` file, or ``None`` for the packaged
    SmolLM2-135M-Instruct (``profiles.packaged_lm()``). A model whose tokenizer has a chat template gets each
    message as one user turn followed by the assistant's turn, and each candidate is scored as the whole
    answer (its tokens and the end-of-turn token, ``end_of_answer``), so that "Star Wars" is not rewarded
    as the beginning of a longer title.

    ``batch_size``: at most this many candidates are packed into one forward pass with their prompt; a user
    with more takes further passes over the prompt's key/value cache (the prompt still runs once). It bounds
    the memory of a pass (its tokens, and one row of logits over the vocabulary per candidate token), never
    the scores: every ``batch_size`` gives the same numbers.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """

    def __init__(self, model_name_or_path: str | os.PathLike | None = None, device="auto",
                 use_chat_template: bool | None = None, end_of_answer: bool = True, batch_size: int = 32):
        super().__init__(model_name_or_path, device, use_chat_template)
        self.end_of_answer = checks.flag("end_of_answer", end_of_answer)
        self.batch_size = checks.positive_int("batch_size", batch_size)

    def prompt(self, message: str) -> str:
        """The exact text the model reads before a candidate: the chat turn, or the message and a newline."""
        message = checks.text("message", message)
        if self.uses_chat_template():
            return self.tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                                      add_generation_prompt=True)
        return message + "\n"

    def _ids(self, messages, candidates):
        tok, chat = self.tokenizer, self.uses_chat_template()
        # a chat template writes its own special tokens; a plain prompt gets the tokenizer's (e.g. BOS)
        prefixes = [tok(self.prompt(m), add_special_tokens=not chat)["input_ids"] for m in messages]
        end = [tok.eos_token_id] if self.end_of_answer and tok.eos_token_id is not None else []
        cands = [[tok(c, add_special_tokens=False)["input_ids"] + end for c in row] for row in candidates]
        context = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None)
        for u, (p, row) in enumerate(zip(prefixes, cands)):
            if any(len(c) == 0 for c in row):
                raise ValueError(f"candidates row {u} holds a text with no tokens; expected non-empty texts")
            longest = len(p) + max(len(c) for c in row)
            if context and longest > context:
                raise ValueError(f"messages[{u}] and its longest candidate need {longest} tokens, more than the "
                                 f"model's context of {context}; shorten the history (max_items)")
        return prefixes, cands

    def _logprobs(self, logits, targets):
        """``log p(target)`` at each row of ``logits`` (the textbook log-softmax over the whole vocabulary, in fp32)."""
        torch = require("torch", "text")

        return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    def _packed(self, head, offset, chunk, past, keep_cache: bool = False):
        """One forward pass over ``head`` (the prompt's tokens after the ``offset`` ones held in the cache ``past``,
        None when ``offset`` is 0) and the candidates of ``chunk`` packed after it, each without its last token
        (which predicts nothing).

        Every candidate token sits at its own position after the prompt (``position_ids``) and sees the prompt and
        the earlier tokens of its own candidate only (an additive 4-D mask, which eager and sdpa attention both
        read): the attention of one pass per candidate. Logits are computed only where a candidate token is
        predicted (``logits_to_keep``): the prompt's last token (when ``head`` is not empty) and every candidate
        token but the last. Returns the log-probabilities over the vocabulary at the prompt's last token (None
        without ``head``), per candidate of ``chunk`` the sum of its log-probabilities after the first token, and
        the cache (``past`` grown by this pass's tokens, a new one with ``keep_cache``, else None).
        """
        torch = require("torch", "text")

        dev, n_prompt = self.device, offset + len(head)
        inputs = [c[:-1] for c in chunk]
        ids = list(head) + [t for c in inputs for t in c]
        sums = torch.zeros(len(chunk), dtype=torch.float64)
        if not ids:  # no prompt token to run and every candidate one token long: nothing left to predict
            return None, sums, past
        lengths = torch.tensor([len(c) for c in inputs], device=dev)
        seg = torch.cat([torch.full((len(head),), -1, device=dev),
                         torch.repeat_interleave(torch.arange(len(chunk), device=dev), lengths)])
        pos = torch.cat([torch.arange(offset, n_prompt, device=dev),
                         n_prompt + torch.arange(int(lengths.sum()), device=dev)
                         - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)])
        seen = (pos[None, :] <= pos[:, None]) & ((seg[None, :] < 0) | (seg[None, :] == seg[:, None]))
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros((len(ids), offset + len(ids)), dtype=dtype, device=dev)
        mask[:, offset:].masked_fill_(~seen, torch.finfo(dtype).min)  # the cached prompt tokens are all seen
        keep = torch.arange(max(len(head) - 1, 0), len(ids), device=dev)
        use_cache = past is not None or keep_cache
        out = self.model(torch.tensor([ids], device=dev), past_key_values=past, use_cache=use_cache,
                         attention_mask=mask[None, None], position_ids=pos[None], logits_to_keep=keep)
        logits = out.logits[0]
        first = torch.log_softmax(logits[0].float(), dim=-1) if head else None
        targets = torch.tensor([t for c in chunk for t in c[1:]], dtype=torch.long, device=dev)
        lp = self._logprobs(logits[1:] if head else logits, targets)  # row r predicts the token after input r
        owner = torch.repeat_interleave(torch.arange(len(chunk)), lengths.cpu())
        return first, sums.index_add_(0, owner, lp.double().cpu()), out.past_key_values if use_cache else None

    def _kv(self, prefixes, cands, progress: bool = False):
        """Every prompt's candidates scored with the prompt run once: ``ceil(n_candidates / batch_size)`` forward
        passes per prompt, ``batch_size`` candidates packed in each (``_packed``).

        The tokens that all the prompts begin with (a chat template's system turn, the start of a shared message)
        run once, and every prompt continues from their key/value cache. The first pass of a prompt runs its
        remaining tokens with its first chunk of candidates; a further chunk runs over the prompt's cache. After
        a pass the cache is cut back to the tokens the next pass reads (``Cache.crop``: no copy). No padding, and
        logits only where a candidate token is predicted: the numbers of one forward pass per candidate
        (``_naive``), at a fraction of the cost.
        """
        torch = require("torch", "text")

        def rewind(cache, length):
            extra = cache.get_seq_length() - length
            if extra > 0:
                cache.crop(-extra)  # a negative count removes that many tokens (transformers 4.x and 5.x alike)

        shared = 0
        if len(prefixes) > 1:  # the longest common prefix; each prompt keeps its last token for its own pass
            shortest = min(len(p) for p in prefixes) - 1
            while shared < shortest and all(p[shared] == prefixes[0][shared] for p in prefixes):
                shared += 1
        totals = []
        with torch.inference_mode():
            base = None
            if shared:
                base = self.model(torch.tensor([prefixes[0][:shared]], device=self.device), use_cache=True,
                                  logits_to_keep=1).past_key_values
            rows = tqdm(list(zip(prefixes, cands)), desc="score (kv)", unit="prompt", disable=not progress,
                        leave=False)
            for prefix, row in rows:
                chunks = [row[s:s + self.batch_size] for s in range(0, len(row), self.batch_size)]
                first, rest, past = self._packed(prefix[shared:], shared, chunks[0], base, len(chunks) > 1)
                parts = [rest]
                for chunk in chunks[1:]:  # over the prompt's cache, the previous chunk's tokens dropped
                    rewind(past, len(prefix))
                    parts.append(self._packed([], len(prefix), chunk, past)[1])
                if base is not None:
                    rewind(base, shared)
                heads = torch.tensor([c[0] for c in row], device=first.device)
                totals.append((first[heads].double().cpu() + torch.cat(parts)).tolist())
        return totals

    def _naive(self, prefix, cands):
        torch = require("torch", "text")

        totals = []
        with torch.inference_mode():
            for c in cands:
                ids = torch.tensor([prefix + c], device=self.device)
                logits = self.model(ids).logits[0, len(prefix) - 1:-1]
                totals.append(float(self._logprobs(logits, ids[0, len(prefix):]).sum()))
        return totals

    def loglik(self, messages, candidates, method: str = "kv", progress: bool = True) -> LogLik:
        """Log-likelihood of every candidate text after each message; ``candidates[u]`` belongs to
        ``messages[u]`` and every row has the same number of candidates.

        ``method="kv"`` runs each prompt once and its cache for all candidates, ``batch_size`` candidates per
        forward pass (``_kv``); ``"naive"`` runs prompt + candidate in full for each candidate (the reference
        the benchmark compares with). An empty or blank message or candidate (or a None/NaN in place of one)
        is a ValueError naming its position: the LM would score the bare end-of-answer token as if it were a
        film.
        """
        messages = _check_titles("messages", messages)
        checks.one_of("method", method, ("kv", "naive"))
        progress = checks.flag("progress", progress)
        if isinstance(candidates, str) or not hasattr(candidates, "__len__") or len(candidates) != len(messages):
            raise ValueError(f"candidates must be one list of texts per message ({len(messages)}), got "
                             f"{checks.describe(candidates)}")
        rows = [_check_titles(f"candidates[{u}]", row) for u, row in enumerate(candidates)]
        widths = {len(r) for r in rows}
        if not messages or widths == {0}:
            raise ValueError("messages and candidates must not be empty")
        if len(widths) != 1:
            raise ValueError(f"every candidates row must have the same length, got lengths {sorted(widths)}")
        prefixes, cands = self._ids(messages, rows)
        if method == "kv":
            total = np.array(self._kv(prefixes, cands, progress))
        else:
            total = np.array([self._naive(p, c) for p, c in tqdm(list(zip(prefixes, cands)), desc="score (naive)",
                                                                  unit="prompt", disable=not progress, leave=False)])
        n_tokens = np.array([[len(c) for c in row] for row in cands])
        return LogLik(total=total, n_tokens=n_tokens)

    def __repr__(self) -> str:
        return f"LMScorer({self.source!r}, device={str(self.device)!r})"


# ----------------------------------------------------------------------------------------------- zero-shot ranking


def candidate_block(candidates, m: int) -> np.ndarray:
    """The first ``m`` columns of a (n_users, C) candidate array, checked: no padding (-1) inside them.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    c = np.asarray(candidates)
    if c.ndim != 2 or (c.size and not np.issubdtype(c.dtype, np.integer)):
        raise ValueError(f"candidates must be a 2-D integer array (users x ranked items), got "
                         f"{checks.describe(candidates)}")
    m = checks.positive_int("m", m)
    if m > c.shape[1]:
        raise ValueError(f"m={m} is larger than the candidate lists ({c.shape[1]} items per user); "
                         f"rank at least m items first, or lower m")
    block = c[:, :m]
    short = np.flatnonzero((block < 0).any(axis=1))
    if len(short):
        raise ValueError(f"candidate rows {short[:5].tolist()} have fewer than m={m} items (padding -1); lower m")
    return block


def zero_shot(scorer: LMScorer, histories, candidates, titles, m: int = 20, max_items: int = 10,
              progress: bool = True) -> LogLik:
    """The LM's log-likelihood of each user's top-``m`` candidates (columns of ``candidates``) after the
    ``history_message`` of the user's last ``max_items`` films.

    ``histories``: per user, the item indices of their history, oldest first (non-empty); ``titles``: the
    display title of every item index (a missing or blank one is a ValueError naming the index). Returns a
    ``LogLik`` aligned with ``candidates[:, :m]``.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    if not isinstance(scorer, LMScorer):
        raise TypeError(f"scorer must be an LMScorer, got {checks.describe(scorer)}")
    block = candidate_block(candidates, m)
    titles = np.asarray(_check_titles("titles", titles), dtype=object)  # position = item index
    if isinstance(histories, np.ndarray) and histories.ndim == 2:
        histories = list(histories)
    if isinstance(histories, (str, bytes)) or not hasattr(histories, "__len__"):
        raise TypeError(f"histories must be a list of item-index arrays, one per user, got "
                        f"{checks.describe(histories)}")
    if len(histories) != len(block):
        raise ValueError(f"histories must hold one history per candidate row ({len(block)}), got {len(histories)}")
    messages = []
    for u, h in enumerate(histories):
        h = np.asarray(h)
        if h.size == 0:
            raise ValueError(f"histories[{u}] is empty: the zero-shot prompt needs at least one film the user "
                             "watched (score cold users with another recommender)")
        messages.append(history_message(list(titles[checks.indices(f"histories[{u}]", h, len(titles))]),
                                        max_items))
    if block.max(initial=-1) >= len(titles):
        raise ValueError(f"candidates hold item indices beyond the {len(titles)} titles")
    return scorer.loglik(messages, [list(titles[row]) for row in block], progress=progress)


class LMRanker(CandidateScorer):
    """The language model as a ``CandidateScorer``: each candidate's log-likelihood after the user's history
    prompt (``zero_shot``), per token (``normalise="mean"``, the default: no bias towards short titles) or in
    total (``"sum"``).

    ``histories`` holds, per user index, the item indices of the user's history, oldest first.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """

    def __init__(self, scorer: LMScorer, histories, titles, max_items: int = 10, normalise: str = "mean"):
        if not isinstance(scorer, LMScorer):
            raise TypeError(f"scorer must be an LMScorer, got {checks.describe(scorer)}")
        if isinstance(histories, (str, bytes)) or not hasattr(histories, "__len__"):
            raise TypeError(f"histories must be a list of item-index arrays, one per user, got "
                            f"{checks.describe(histories)}")
        self.scorer, self.histories = scorer, list(histories)
        self.titles = _check_titles("titles", titles)
        self.max_items = checks.positive_int("max_items", max_items)
        self.normalise = checks.one_of("normalise", normalise, ("mean", "sum"))

    def score_candidates(self, user_idx, candidates) -> np.ndarray:
        users, cands = self._check(user_idx, candidates, len(self.histories), len(self.titles))
        ll = zero_shot(self.scorer, [self.histories[u] for u in users], cands, self.titles, m=cands.shape[1],
                       max_items=self.max_items, progress=False)
        return ll.scores(self.normalise)


def order_by(candidates, scores) -> np.ndarray:
    """Candidates re-ordered by descending score per row (ties keep the candidates' order).

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    c, s = np.asarray(candidates), checks.array("scores", scores, ndim=2, finite=False)
    if c.shape != s.shape:
        raise ValueError(f"candidates and scores must be 2-D arrays of one shape, got {c.shape} and {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores hold NaN; expected a finite score for every candidate")
    return np.take_along_axis(c, np.argsort(-s, axis=1, kind="stable"), axis=1)


# ----------------------------------------------------------------------------------------------- faithfulness

_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_QUOTED = re.compile(r"[\"“*]([^\"”*\n]{2,80})[\"”*]")


def _name(title: str) -> str:
    return semantic.natural_title(_YEAR.sub("", str(title)).strip()).strip()


def _names_pattern(names):
    alts = sorted({n for n in names if n}, key=len, reverse=True)
    body = "|".join(re.escape(n) for n in alts)
    return re.compile(rf"(?<![\w])({body})(?![\w])")


def _full(title: str) -> str:
    """"Usual Suspects, The (1995)" -> "The Usual Suspects (1995)"; a title without a year keeps none."""
    year = _YEAR.search(str(title))
    return _name(title) + (f" ({year.group(0).strip()[1:-1]})" if year else "")


_FOLLOWING_YEAR = re.compile(r"\s*\((\d{4})\)")
# a run of capitalised words (small words allowed inside) right before "(1995)": how a text cites a film
_CAP = r"[A-Z0-9][^\s()]*"
_SMALL = r"(?:of|the|and|a|an|in|on|to|for|with|at|from|by|vs\.?|de|la|le|du|des|del|et)(?=\s)"
_TITLE_YEAR = re.compile(rf"({_CAP}(?:\s+(?:{_SMALL}|{_CAP}))*)\s*\((\d{{4}})\)")


def named_titles(text: str, catalogue_titles) -> list[str]:
    """The films ``text`` names, in order of appearance: catalogue titles and invented ones.

    Titles are matched case-sensitively, longest first, without their year and with a leading article
    moved back ("Usual Suspects, The" -> "The Usual Suspects"); when the text gives a year right after the
    title, the name carries it ("Heat (1995)"), so that a wrong year names another film. A one-word title
    at the start of a sentence is not counted unless a year follows (capitalised there anyway). Invented
    films are returned with a leading "?": a title-cased phrase followed by a year that ends in no
    catalogue title ("One Flew Over the Cuckoo's Eggshell (1975)"), and a short quoted or starred span
    (at most six words, capitalised, holding no catalogue title).

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    text = checks.text("text", text, empty=True)
    names = [_name(t) for t in _check_titles("catalogue_titles", catalogue_titles)]
    known, pattern = set(names), _names_pattern(names)
    found, cited = [], []  # (position, name); character ranges of the "Title (year)" citations
    for m in _TITLE_YEAR.finditer(text):
        words, year = m.group(1).split(" "), m.group(2)
        starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]]) + m.start(1)
        for w, start in enumerate(starts):  # the longest word-aligned suffix that is a catalogue title
            name = " ".join(words[w:]).strip(" ,;:")
            if name in known:
                found.append((start, f"{name} ({year})"))
                cited.append((start, m.end()))
                break
        else:
            found.append((m.start(), f"?{m.group(1).strip(' ,;:')} ({year})"))
            cited.append((m.start(), m.end()))
    for m in pattern.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in cited):
            continue  # part of a citation read above
        name = m.group(1)
        before = text[:m.start()].rstrip()
        if " " not in name and (not before or before[-1] in ".!?:"):
            continue
        year = _FOLLOWING_YEAR.match(text, m.end())
        found.append((m.start(), f"{name} ({year.group(1)})" if year else name))
    for m in _QUOTED.finditer(text):
        span = _name(m.group(1).strip(" .,;:!?"))
        if (span and span not in known and span[:1].isupper() and len(span.split()) <= 6
                and not pattern.search(span) and not any(a <= m.start(1) < b for a, b in cited)):
            found.append((m.start(), "?" + span))
    return list(dict.fromkeys(name for _, name in sorted(found, key=lambda x: x[0])))


@dataclass(frozen=True)
class Faithfulness:
    """``named``: the titles an explanation names; ``outside``: those neither in the history nor the item;
    ``cites``: those among the reasons it was asked to use (``semantic.explain``'s history films)."""

    named: tuple
    outside: tuple
    cites: tuple = ()

    @property
    def faithful(self) -> bool:
        """No name outside the history and the recommended item."""
        return not self.outside

    @property
    def grounded(self) -> bool:
        """Faithful, and citing at least one of the reasons: an explanation that explains."""
        return self.faithful and bool(self.cites)


def _allowed(titles) -> set:
    return {_name(t) for t in titles} | {_full(t) for t in titles}


def check_explanation(text: str, history_titles, item_title: str, catalogue_titles, reasons=()) -> Faithfulness:
    """Whether an explanation names only films of the user's history or the recommended item, and which of
    ``reasons`` (history films, e.g. ``semantic.explain``'s) it cites.

    A name given without a year is allowed when some history film or the item has that title; a name with
    a year only when that title and year are in the history or the item ("The Empire Strikes Back (1987)"
    is not the 1980 film the user watched). Invented titles (``named_titles``' "?" names) are never allowed.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """
    allowed_titles = _check_titles("history_titles", history_titles) + [checks.text("item_title", item_title)]
    reasons = [] if isinstance(reasons, (list, tuple)) and not reasons else _check_titles("reasons", reasons)
    catalogue_titles = _check_titles("catalogue_titles", catalogue_titles)
    allowed, cited = _allowed(allowed_titles), _allowed(reasons)
    named = named_titles(text, catalogue_titles + allowed_titles + reasons)
    return Faithfulness(named=tuple(named), outside=tuple(n for n in named if n not in allowed),
                        cites=tuple(n for n in named if n in cited and n in allowed))
