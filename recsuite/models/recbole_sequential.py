"""RecBole 1.2.1's sequential recommenders (SASRec, GRU4Rec, ...) trained on our split and scoring our histories.

``fit_recbole_sequential`` writes our train split as RecBole's augmented sequence files (one row per prefix of
at most ``max_len`` items, as RecBole's own ``data_augmentation`` builds them), early-stops on each valid user's
next item with RecBole's own ``Trainer`` and returns a ``RecBoleSequentialModel`` whose ``score_sequences`` ranks
our items after any history. The general models live in ``recsuite.models.recbole``; every RecBole workaround in
``recsuite.models.recbole_compat``.

Introduced in notebooks/13_sequential.ipynb
"""

from __future__ import annotations

import importlib
import inspect
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.data.split import time_order
from recsuite.models.recbole import (
    DATASET,
    RECBOLE_METRIC_NAMES,
    RECBOLE_METRICS,
    RESERVED_KEYS,
    check_config,
    check_device,
    index_column,
    run_recbole,
    token_map,
    workdir_folder,
)
from recsuite.models.recbole_compat import patch_recbole

# ===================================================================================================
# RecBole sequential recommenders (next item from the history read oldest first)
# ===================================================================================================
# Sequential recommenders fit_recbole_sequential refuses, and why: our files carry user ids, item ids and
# item lists only, and score_sequences reads a history alone (no user id).
_SEQUENTIAL_UNSUPPORTED = {
    **dict.fromkeys(("FDSA", "GRU4RecF", "SASRecF", "S3Rec", "DIN", "DIEN"),
                    "it needs item feature fields (or a label field) that our files do not carry"),
    **dict.fromkeys(("GRU4RecKG", "KSR"), "it needs a knowledge graph (entity embeddings) we do not provide"),
    **dict.fromkeys(("Caser", "FOSSIL", "FPMC", "HGN", "HRM", "NPE", "SHAN", "TransRec", "SINE"),
                    "it reads a user id (a user embedding), but score_sequences scores a history alone"),
}
# Keys fit_recbole_sequential also sets: they define the sequence fields of its files.
_SEQUENTIAL_RESERVED = RESERVED_KEYS + ("MAX_ITEM_LIST_LENGTH", "ITEM_LIST_LENGTH_FIELD", "LIST_SUFFIX", "TIME_FIELD",
                                    "alias_of_item_id", "alias_of_user_id", "seq_separator", "field_separator",
                                    "valid_metric")
_ITEM_LIST = "item_id_list"  # ITEM_ID_FIELD + LIST_SUFFIX, as RecBole names the history field
_ITEM_LENGTH = "item_length"


@dataclass
class RecBoleSequentialModel:
    """A RecBole sequential recommender trained on our split; scores histories in our item index space.

    Not a ``Scorer``: its scores depend on the history it reads, so ``score_sequences`` takes the
    histories (e.g. ``Protocol.sequences("test")``). ``item_map`` holds, for each of our item indices,
    RecBole's internal id (0 = not in RecBole's id space: items in none of the written files).

    Introduced in notebooks/13_sequential.ipynb
    """

    name: str  # RecBole's model name, e.g. "SASRec"
    model: object = field(repr=False)
    config: dict = field(repr=False)  # the config_dict handed to RecBole (plain data)
    recbole_config: object = field(repr=False)  # RecBole's merged Config
    item_map: np.ndarray = field(repr=False)
    item_tokens: np.ndarray = field(repr=False)  # RecBole id -> token (our index as str; "[PAD]" at 0)
    recbole_eval: dict  # RecBole's evaluator on the test file: next item, full sort, nothing masked
    best_valid: dict | None
    valid_curve: list  # [(epoch, valid score), ...] as RecBole's early stopping saw it
    train_loss: dict  # epoch -> summed training loss
    fit_seconds: float
    max_len: int = 50
    k: int = 10

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @property
    def known_items(self) -> np.ndarray:
        """Boolean (n_items,) mask of the items RecBole ranks (those in its id space)."""
        return self.item_map > 0

    def score_sequences(self, sequences, batch_size: int = 256) -> np.ndarray:
        """(len(sequences), n_items) float32 next-item scores in our index space, one row per history.

        Each history is a 1-D int array of our item indices, oldest first. Items outside RecBole's id
        space are dropped from it, then its last ``max_len`` items, mapped to RecBole's ids, go through
        the model's ``full_sort_predict`` (batched, ``eval()`` mode, no grad). Items outside RecBole's id
        space get that row's lowest score minus 1 (as ``RecBoleModel.scores(fill="min")``). A history that
        is empty (after the drop) gives a row of 0.0: the model needs at least one item to read, and a
        constant row ranks nothing above anything else, like ``RecBoleModel.scores`` for an unknown user.

        Introduced in notebooks/13_sequential.ipynb
        """
        torch = require("torch", "text")
        from recbole.data.interaction import Interaction

        seqs = checks.sequences("sequences", sequences, self.n_items)
        batch_size = checks.positive_int("batch_size", batch_size)
        internal = [self.item_map[s] for s in seqs]
        internal = [s[s > 0][-self.max_len:] for s in internal]
        lengths = np.array([len(s) for s in internal], dtype=np.int64)
        rows = np.flatnonzero(lengths > 0)
        # right-padded with 0 (RecBole's padding id), as its data augmentation writes item lists
        padded = np.zeros((len(seqs), self.max_len), dtype=np.int64)
        flat = np.concatenate(internal) if len(internal) else np.zeros(0, np.int64)
        padded[np.repeat(np.arange(len(seqs)), lengths), np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths,
                                                                                          lengths)] = flat
        known_i = np.flatnonzero(self.known_items)
        columns = torch.as_tensor(self.item_map[known_i])
        cfg = self.recbole_config
        out = np.zeros((len(seqs), self.n_items), dtype=np.float32)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                r = rows[start:start + batch_size]
                batch = Interaction({cfg["ITEM_ID_FIELD"] + cfg["LIST_SUFFIX"]: torch.as_tensor(padded[r]),
                                     cfg["ITEM_LIST_LENGTH_FIELD"]: torch.as_tensor(lengths[r])}).to(cfg["device"])
                s = self.model.full_sort_predict(batch).view(len(r), -1).float().cpu()
                s = s[:, columns].numpy()
                if len(known_i) < self.n_items:
                    out[r] = (s.min(axis=1) - 1.0)[:, None]
                out[np.ix_(r, known_i)] = s
        return out


def recbole_sequential_models() -> tuple[str, ...]:
    """The names ``fit_recbole_sequential`` accepts: RecBole 1.2.1's sequential recommenders that read item
    histories alone (no item features, knowledge graph or user id), spelt as RecBole spells them.

    Introduced in notebooks/13_sequential.ipynb
    """
    patch_recbole()  # before the first import of RecBole's sequential models (recbole_compat, row 9)
    import recbole.model.sequential_recommender as sequential
    from recbole.model.abstract_recommender import SequentialRecommender

    return tuple(sorted(n for n, c in vars(sequential).items()
                        if inspect.isclass(c) and issubclass(c, SequentialRecommender)
                        and c is not SequentialRecommender and n not in _SEQUENTIAL_UNSUPPORTED))


def _sequential_model(model):
    if not isinstance(model, str):
        raise TypeError(f"model must be a RecBole sequential model name such as 'SASRec', got {checks.describe(model)}")
    if model in _SEQUENTIAL_UNSUPPORTED:
        raise ValueError(f"model {model!r} is not supported: {_SEQUENTIAL_UNSUPPORTED[model]}")
    names = recbole_sequential_models()
    if model not in names:
        raise ValueError(f"model {model!r} is not a supported RecBole sequential recommender; names are "
                         f"case-sensitive, one of {names}")
    return getattr(importlib.import_module(f"recbole.model.sequential_recommender.{model.lower()}"), model)


def _ordered_interactions(df, name: str, n_users: int, n_items: int) -> tuple:
    """(users, items, timestamps) of ``df`` sorted by user, time, item, as ``Protocol.sequences`` orders them."""
    checks.columns(name, df, ["user_idx", "item_idx", "timestamp"])
    if len(df) == 0:
        raise ValueError(f"{name} is empty; RecBole needs at least one interaction in each file")
    users = index_column(df, name, "user_idx", n_users, "user")
    items = index_column(df, name, "item_idx", n_items, "item")
    ts = df["timestamp"].to_numpy()
    if ts.dtype.kind not in "iufmM":
        raise TypeError(f"{name}.timestamp must hold numbers or datetimes, got dtype {ts.dtype}")
    if pd.isna(ts).any():
        raise ValueError(f"{name}.timestamp holds {int(pd.isna(ts).sum())} missing values; expected none")
    order = time_order(users, ts, items)
    return users[order], items[order], ts[order]


def _item_list_rows(users, items, n_users: int, max_len: int, hist_users=None, hist_items=None) -> pd.DataFrame:
    """RecBole's benchmark rows ``user_id``, ``item_id_list`` (space-separated), ``item_id``.

    Without a history: every interaction after a user's first, history = that user's previous <= max_len
    items (``SequentialDataset.data_augmentation``). With one (sorted by user): one row per user of
    ``users``, target = their first item, history = their last <= max_len history items; users whose
    history is empty are left out (a model has nothing to read).
    """
    tokens = items.astype(str)
    if hist_users is None:
        counts = np.bincount(users, minlength=n_users)
        start = np.repeat(np.cumsum(counts) - counts, counts)  # position of each row's user's first item
        pos = np.arange(len(items))
        keep = pos > start
        hi, lo = pos[keep], np.maximum(start[keep], pos[keep] - max_len)
        hist_tokens, row_users, targets = tokens, users[keep], tokens[keep]
    else:
        first = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.cumsum(np.bincount(hist_users, minlength=n_users))
        counts = np.bincount(hist_users, minlength=n_users)
        cand = users[first]
        has = counts[cand] > 0
        first, cand = first[has], cand[has]
        hi = ends[cand]
        lo = hi - np.minimum(counts[cand], max_len)
        hist_tokens, row_users, targets = hist_items.astype(str), cand, tokens[first]
    history = [" ".join(hist_tokens[a:b]) for a, b in zip(lo, hi)]
    return pd.DataFrame({"user_id:token": row_users, f"{_ITEM_LIST}:token_seq": history, "item_id:token": targets})


def _pad_item_lists(datasets, max_len: int) -> None:
    # RecBole pads a benchmark file's token_seq to its longest list, its own augmentation to
    # MAX_ITEM_LIST_LENGTH; some models (RepeatNet) need the latter, so every part gets max_len columns.
    torch = require("torch", "text")

    for ds in datasets:
        lists = ds.inter_feat.interaction[_ITEM_LIST]
        ds.inter_feat.interaction[_ITEM_LIST] = torch.nn.functional.pad(lists, (0, max_len - lists.shape[1]))
        ds.field2seqlen[_ITEM_LIST] = max_len


def _write_sequential_files(folder: Path, train: tuple, valid: tuple | None, test: tuple, n_users: int,
                            max_len: int) -> dict:
    """Write ``recsuite.{train,valid,test}.inter`` for RecBole's ``benchmark_filename``; returns the row counts.

    ``train``/``valid``/``test`` are (users, items, timestamps) sorted as ``_ordered_interactions`` gives
    them. Train rows are the augmentation of train; valid: train history, first valid item; test:
    train+valid history (train alone when ``valid`` is None, whose slot then holds the test rows), first
    test item.
    """
    files = {"train": _item_list_rows(*train[:2], n_users, max_len)}
    if valid is not None:
        files["valid"] = _item_list_rows(*valid[:2], n_users, max_len, *train[:2])
        u, i, t = (np.concatenate([a, b]) for a, b in zip(train, valid))
        order = time_order(u, t, i)  # train+valid as one history, ordered as Protocol.sequences("test")
        before = (u[order], i[order])
    else:
        before = train[:2]
    files["test"] = _item_list_rows(*test[:2], n_users, max_len, *before)
    if valid is None:
        files["valid"] = files["test"]
    for part, rows in files.items():
        if len(rows) == 0:
            why = "every user has a single train interaction" if part == "train" else \
                f"no user with a {part} item has an earlier item"
            raise ValueError(f"the {part} file would have no rows: {why}")
        rows.to_csv(folder / f"{DATASET}.{part}.inter", sep="\t", index=False)
    return {part: len(rows) for part, rows in files.items()}


def fit_recbole_sequential(model: str, train_df, valid_df, test_df, n_users: int, n_items: int, *, max_len: int = 50,
                           config: dict | None = None, seed: int = 0, epochs: int = 20, k: int = 10,
                           device: str = "auto", workdir=None, progress: bool = False) -> RecBoleSequentialModel:
    """Train the RecBole sequential model ``model`` (e.g. "SASRec", "GRU4Rec") with RecBole's own Trainer on our split.

    Next-item prediction: from a user's history i_1..i_{t-1} (oldest first) the model scores every item as
    i_t, e.g. SASRec (Kang & McAuley 2018, ICDM; causal self-attention over the last ``max_len`` items)
    and GRU4Rec (Hidasi et al. 2016, ICLR; a GRU over the history), both trained by default with RecBole's
    cross-entropy over all items, -log softmax(h_{t-1} E^T)[i_t]. The frames (columns ``user_idx``,
    ``item_idx``, ``timestamp``) give each user's history in time order, ties broken by item index (as
    ``Protocol.sequences``). RecBole reads ``benchmark_filename`` files and does not augment them, so they
    are written augmented as ``SequentialDataset.data_augmentation`` would: one train row per train
    interaction after a user's first (history = the previous <= ``max_len`` train items); one valid row per
    user with a valid item (history = the last <= ``max_len`` train items, target = the first valid item);
    one test row likewise (history = train+valid, target = the first test item). Users whose history is
    empty get no valid/test row. RecBole early-stops on valid NDCG@k (next item), restores the best
    checkpoint, and ``recbole_eval`` is its evaluator on the test rows (full sort over its id space;
    RecBole's sequential full sort masks nothing: a history item may be ranked, unlike
    ``Protocol.evaluate``). RecBole's id space holds the items of these rows, so an item only in later
    test interactions is outside it (``score_sequences`` ranks it last).

    ``valid_df=None`` refits on train for exactly ``epochs`` epochs without early stopping (as
    ``fit_recbole``); the test history is then train alone. ``config`` overrides RecBole/model
    hyper-parameters (``hidden_size``, ``n_layers``, ``dropout_prob``, ``learning_rate``,
    ``train_batch_size``, ``stopping_step``, ``loss_type``, ...); keys that define the files and the
    protocol are reserved (``max_len`` sets ``MAX_ITEM_LIST_LENGTH``). ``loss_type="BPR"`` gets one uniform
    negative per positive unless ``train_neg_sample_args`` says otherwise. Files live in a temporary
    folder under ``workdir`` (default ``build/recbole``), removed afterwards. Uses and reseeds the global
    RNGs (RecBole's ``init_seed``). Checked: SASRec and GRU4Rec end to end (synthetic data and ML-100K);
    BERT4Rec, CORE, FEARec, GCSAN, LightSANs, NARM, NextItNet, RepeatNet, SRGNN and STAMP fit and score
    on synthetic data; GRU4RecCPR and SASRecCPR need more items than their ``reranker_CAN_NUM`` (100).

    Introduced in notebooks/13_sequential.ipynb
    """
    patch_recbole()
    model_class = _sequential_model(model)
    n_users, n_items = checks.positive_int("n_users", n_users), checks.positive_int("n_items", n_items)
    max_len = checks.positive_int("max_len", max_len)
    seed, epochs = checks.seed("seed", seed), checks.positive_int("epochs", epochs)
    k = checks.integer("k", k, low=1, high=n_items)
    config = check_config(config, _SEQUENTIAL_RESERVED)
    use_gpu = check_device(device)
    progress = checks.flag("progress", progress)

    train = _ordered_interactions(train_df, "train_df", n_users, n_items)
    test = _ordered_interactions(test_df, "test_df", n_users, n_items)
    refit = valid_df is None
    valid = None if refit else _ordered_interactions(valid_df, "valid_df", n_users, n_items)

    params = {"train_neg_sample_args": None, **config}  # CE over all items: RecBole refuses negatives with it
    if params.get("loss_type") == "BPR" and params["train_neg_sample_args"] is None:
        params["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0,
                                           "dynamic": False, "candidate_num": 0}

    workdir = workdir_folder(workdir)
    with tempfile.TemporaryDirectory(prefix=f"{model}-", dir=workdir) as tmp:
        root = Path(tmp)
        (root / DATASET).mkdir()
        _write_sequential_files(root / DATASET, train, valid, test, n_users, max_len)
        cfg = {
            "dataset": DATASET, "seed": seed, "reproducibility": True, "epochs": epochs,
            "show_progress": progress,
            "data_path": str(root), "checkpoint_dir": str(root / "saved"),
            "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
            "LIST_SUFFIX": "_list", "ITEM_LIST_LENGTH_FIELD": _ITEM_LENGTH, "MAX_ITEM_LIST_LENGTH": max_len,
            "alias_of_item_id": [_ITEM_LIST], "seq_separator": " ", "field_separator": "\t",
            "load_col": {"inter": ["user_id", _ITEM_LIST, "item_id"]},
            "eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"},
            "metrics": [RECBOLE_METRIC_NAMES[m] for m in RECBOLE_METRICS], "topk": [k],
            "valid_metric": f"NDCG@{k}", "metric_decimal_place": 12,
            "gpu_id": "0" if use_gpu else "", "use_gpu": use_gpu, "worker": 0,
            "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
            **params,
        }
        run = run_recbole(model_class, cfg, seed, early_stopping=not refit, progress=progress,
                           prepare=lambda *parts: _pad_item_lists(parts, max_len))

    dataset = run.pop("dataset")
    return RecBoleSequentialModel(
        name=model, config=cfg,
        item_map=token_map(dataset.field2token_id["item_id"], n_items),
        item_tokens=np.asarray(dataset.field2id_token["item_id"]),
        max_len=max_len, k=k, **run,
    )
