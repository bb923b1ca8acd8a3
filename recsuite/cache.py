"""Atomic, self-describing ``.npz`` caches: one array stored with the JSON key it was computed from.

The cache-or-compute helpers (``semantic.encode_texts``, ``cf.cf_scores``, ``fusion.fused_scores``) name
a file by a digest of their key and store the key inside it. A file that is absent, truncated, not ours,
or holds another key reads as a miss, and the caller recomputes and overwrites it. A write goes to a
temporary file in the same folder that is then renamed into place, so a concurrent reader sees either
the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "key_digest", "read_array", "write_array"]


def key_digest(key: dict, length: int = 20) -> str:
    """Hex digest of a JSON-serialisable key (sorted keys, so dict order does not matter)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:length]


def read_array(path, key: dict, name: str):
    """The array ``name`` stored in ``path`` with exactly ``key``, or None (absent, unreadable or another key)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            array = z[name]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # JSONDecodeError is a ValueError
        return None
    return array if meta == key else None


def atomic_write(path, write, text: bool = False, prefix: str | None = None, mode: int | None = None) -> Path:
    """Fill ``path`` all at once: ``write(fh)`` writes a temporary file in the same folder, renamed into place.

    A concurrent reader sees the old file or the whole new one; concurrent writers leave one whole file.
    ``mode`` sets the file's permissions (``mkstemp`` makes it 0600); the folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem if prefix is None else prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb") as fh:
            write(fh)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_array(path, key: dict, name: str, array) -> None:
    """Store ``array`` under ``name`` together with ``key`` in ``path``, atomically."""
    atomic_write(path, lambda fh: np.savez(fh, **{name: np.asarray(array)},
                                           meta=np.array(json.dumps(key, sort_keys=True))))
