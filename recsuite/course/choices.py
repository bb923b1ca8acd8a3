"""The settings a lesson chose on validation, kept for the lessons after it, keyed by protocol and seed.

A lesson that tunes something (03 the CF models' parameters, 04 the blend weights, ...) writes its
choice with ``save``; a later lesson reads it with ``load``, which, when the file is missing (a fresh
clone on which the earlier lesson never ran), calls the package function that makes the same choice and
stores its answer. So no lesson depends on a constant in the package that another lesson must match,
and a lesson run with ``SEED = 1`` reads the choices made with ``SEED = 1``.

Files: ``datasets/choices/<protocol>/seed-<seed>/<name>.json``, written atomically (a unique temporary
file renamed into place), so concurrent writers never leave a half-written file and a reader sees one
whole version.

Introduced in notebooks/02_llm_semantic_features.ipynb
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from recsuite.core import checks
from recsuite.core.cache import atomic_write
from recsuite.core.paths import data_home

__all__ = ["as_json", "load", "path", "protocol_key", "save"]
_NAME = re.compile(r"[a-z][a-z0-9_.-]*")


def protocol_key(protocol) -> str:
    """A digest of a protocol's parameters and of its (user, item) parts: equal for equal splits."""
    if not all(hasattr(protocol, a) for a in ("params", "frame", "n_users", "n_items")):
        raise TypeError(f"protocol must be a recsuite.data.split.Protocol, got {type(protocol).__name__}")
    digest = hashlib.sha256(json.dumps(dict(protocol.params or {}), sort_keys=True).encode())
    digest.update(repr((int(protocol.n_users), int(protocol.n_items))).encode())
    for part in ("train", "valid", "test", "cold_test"):
        f = protocol.frame(part)
        for col in ("user_idx", "item_idx"):
            digest.update(np.ascontiguousarray(f[col].to_numpy(np.int64)).tobytes())
    return digest.hexdigest()[:12]


def _check(name, seed, root=None) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, a lower-case identifier like 'cf.als', got {checks.describe(name)}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"name must be a lower-case identifier like 'cf.als', got {name!r}")
    checks.seed("seed", seed)
    if root is not None and (not isinstance(root, (str, os.PathLike)) or (isinstance(root, str) and not root.strip())):
        raise TypeError(f"root must be None or a folder (a non-empty str or os.PathLike), got {checks.describe(root)}")


def path(name: str, protocol, seed: int, root=None) -> Path:
    """The file that holds choice ``name`` for this protocol and seed (``root`` defaults to ``datasets/choices``)."""
    _check(name, seed, root)
    if root is None:
        root = data_home() / "choices"
    return Path(root) / protocol_key(protocol) / f"seed-{int(seed)}" / f"{name}.json"


def as_json(value, name: str = "value"):
    """``value`` as plain JSON data: dicts with str keys, lists for tuples, Python numbers for NumPy scalars.

    Dict keys must be str or int (an int key becomes its str, as in JSON); two keys that become the same
    str (``1`` and ``"1"``) raise ValueError, since one value would be lost. Raises TypeError for anything
    JSON cannot hold and ValueError for NaN or inf, naming where in ``value`` (``name``) it is. Two settings
    are the same choice exactly when their ``as_json`` forms are equal.
    """
    if isinstance(value, dict):
        out, first = {}, {}
        for k, v in value.items():
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (str, int, np.integer)):
                raise TypeError(f"{name} keys must be str or int (JSON keys are text), got {type(k).__name__} {k!r}")
            key = str(k)
            if key in first:
                raise ValueError(f"{name} has keys {first[key]!r} and {k!r}, which both become the JSON key {key!r}; "
                                 "one value would be lost")
            first[key] = k
            out[key] = as_json(v, f"{name}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [as_json(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (np.bool_, np.integer, np.floating, np.str_)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        raise ValueError(f"{name} must hold finite numbers (a choice), got {value!r}")
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise TypeError(f"{name} must be JSON data (dicts, lists, str, numbers), got {type(value).__name__}")
    return value


def save(name: str, value, protocol, seed: int, notebook: str, root=None) -> Path:
    """Store ``value`` (JSON data) as the choice ``name`` that ``notebook`` made on ``protocol`` with ``seed``.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    target = path(name, protocol, seed, root)
    if not isinstance(notebook, str):
        raise TypeError(f"notebook must name who made the choice (a str), got {checks.describe(notebook)}")
    if not notebook.strip():  # TypeError, as before: the lessons' tests expect it
        raise TypeError(f"notebook must name who made the choice (a non-empty str), got {notebook!r}")
    record = {"name": name, "value": as_json(value), "seed": int(seed), "protocol": protocol_key(protocol),
              "protocol_params": as_json(dict(protocol.params or {}), "protocol.params"), "made_by": notebook,
              "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    # 0644: mkstemp's 0600 would hide a shared choice from other users; a hidden temporary name while it is written
    return atomic_write(target, lambda fh: json.dump(record, fh, indent=1), text=True, prefix=f".{name}-", mode=0o644)


def load(name: str, protocol, seed: int, compute=None, root=None):
    """The choice ``name`` for this protocol and seed; when it is missing, ``compute()`` makes it and it is saved.

    ``compute`` is the package function that makes the same choice as the lesson (e.g. ``cf.tune_fast_model``);
    without it a missing choice raises FileNotFoundError naming the lesson to run. An unreadable file, and a
    record made for another name, seed or protocol (its recorded ``protocol_key`` differs, e.g. a file copied
    between folders), are treated as missing: a choice is never read back for a protocol it was not made on.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    target = path(name, protocol, seed, root)
    if compute is not None and not callable(compute):
        raise TypeError(f"compute must be None or a function compute() that makes the choice, "
                        f"got {checks.describe(compute)}")
    key, other = protocol_key(protocol), ""
    try:
        record = json.loads(target.read_text())
        if isinstance(record, dict) and record.get("name") == name and record.get("seed") == int(seed) \
                and "value" in record:
            if record.get("protocol") == key:
                return record["value"]
            other = f" (the file there was made for protocol {record.get('protocol')!r}, not {key!r})"
    except (OSError, ValueError):
        pass
    if compute is None:
        raise FileNotFoundError(f"no choice {name!r} for this protocol and seed {seed} ({target}){other}; run the "
                                "lesson that makes it first")
    value = as_json(compute(), "compute()")
    try:
        save(name, value, protocol, seed, notebook=f"computed on demand by {getattr(compute, '__qualname__', 'compute')}",
             root=root)
    except OSError as e:  # a read-only datasets/ still gets the answer
        warnings.warn(f"could not store choice {name!r} in {target.parent}: {e}", stacklevel=2)
    return value
