"""Atomic, self-describing ``.npz`` caches: one array stored with the JSON key it was computed from.

The cache-or-compute helpers (``semantic.encode_texts``, ``artifacts.cf_scores``, ``artifacts.fused_scores``) name
a file by a digest of their key and store the key inside it. A file that is absent, truncated, not ours,
or holds another key reads as a miss, and the caller recomputes and overwrites it. A write goes to a
temporary file in the same folder that is then renamed into place, so a concurrent reader sees either
the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from recsuite.core import checks

__all__ = ["atomic_write", "built_folder", "folder_is_whole", "key_digest", "locked", "read_array", "read_keyed",
           "write_array", "write_or_warn"]


def _key_json(key) -> str:
    """``key`` as sorted JSON; a key that is not a dict of finite JSON data is refused, naming ``key``."""
    if not isinstance(key, dict):
        raise TypeError(f"key must be a dict of JSON data (the settings the array was computed from), "
                        f"got {checks.describe(key)}")
    try:
        return json.dumps(key, sort_keys=True, allow_nan=False)
    except TypeError as err:  # a NumPy scalar, a set, an object, or keys of mixed types
        raise TypeError(f"key must hold only JSON data (str, int, float, bool, None, lists, dicts), got {err}") from None
    except ValueError:
        raise ValueError("key holds NaN or inf; expected finite numbers, so that the stored key reads back equal") from None


def _path(value) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike file name, got {checks.describe(value)}")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"path must be a non-empty file name, got {value!r}")
    return Path(value)


def _array_name(value) -> str:
    name = checks.text("name", value)
    if name == "meta":
        raise ValueError("name must not be 'meta': that entry holds the key")
    return name


def key_digest(key: dict, length: int = 20) -> str:
    """Hex digest of a JSON-serialisable key (sorted keys, so dict order does not matter)."""
    text = _key_json(key)
    length = checks.integer("length", length, low=1, high=64)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


#: Bytes ``sha256_file`` reads at a time: few enough Python steps that a thread hashing a 500 MB file beside
#: other Python work (``built_folder``'s background check) waits for the GIL some 30 times, not 500.
_HASH_BLOCK = 16 << 20


def sha256_file(path) -> str:
    """Hex SHA-256 of a file's contents, read every time (never remembered by size or mtime)."""
    if not isinstance(path, (str, os.PathLike)) or (isinstance(path, str) and not path.strip()):
        # open(3) would hash whatever file descriptor 3 is, then close it
        raise TypeError(f"path must be a file name (a non-empty str or os.PathLike), got {checks.describe(path)}")
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        # one buffer, filled in place (hashlib and the read both release the GIL); a small file gets a small one
        block = memoryview(bytearray(max(1 << 16, min(os.fstat(fh.fileno()).st_size, _HASH_BLOCK))))
        while n := fh.readinto(block):
            h.update(block[:n])
    return h.hexdigest()


def read_array(path, key: dict, name: str):
    """The array ``name`` stored in ``path`` with exactly ``key``, or None (absent, unreadable or another key)."""
    path, name = _path(path), _array_name(name)
    want = json.loads(_key_json(key))  # as it reads back: tuples are lists, dict keys are str
    hit = read_keyed(path, name)
    return hit[1] if hit is not None and hit[0] == want else None


def read_keyed(path, name: str):
    """(key, array) as ``write_array`` stored them in ``path``, or None (absent, unreadable, not ours).

    For a reader that checks part of the key itself (``artifacts.lesson_scores`` reads a file whose key also says
    which model and parameters another lesson used, which the reader cannot know in advance).
    """
    path, name = _path(path), _array_name(name)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array under this name: not ours
        return None
    try:
        with loaded as z:
            meta = json.loads(str(z["meta"]))
            array = z[name]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # JSONDecodeError is a ValueError
        return None
    return (meta, array) if isinstance(meta, dict) else None


def atomic_write(path, write, text: bool = False, prefix: str | None = None, mode: int | None = None) -> Path:
    """Fill ``path`` all at once: ``write(fh)`` writes a temporary file in the same folder, renamed into place.

    A concurrent reader sees the old file or the whole new one; concurrent writers leave one whole file.
    ``mode`` sets the file's permissions (``mkstemp`` makes it 0600); the folder is created when missing.
    """
    path = _path(path)
    if not callable(write):
        raise TypeError(f"write must be a function write(fh) that fills the file, got {checks.describe(write)}")
    text = checks.flag("text", text)
    if prefix is not None:
        prefix = checks.text("prefix", prefix, empty=True)
        if os.sep in prefix or (os.altsep and os.altsep in prefix):
            raise ValueError(f"prefix must be a file-name prefix without a path separator, got {prefix!r}")
    if mode is not None:
        mode = checks.integer("mode", mode, low=0, high=0o7777)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem if prefix is None else prefix, suffix=".tmp")
    try:
        with (os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")) as fh:
            write(fh)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


@contextmanager
def locked(path):
    """Hold an exclusive lock on ``<path>.lock`` for a read-modify-write of ``path`` (``fcntl.flock``).

    A file several processes add to (the leaderboard, a cache of generated texts) is re-read, changed and
    rewritten (``atomic_write``) inside this block, so no writer's additions are lost to another's rename.
    """
    path = _path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_array(path, key: dict, name: str, array) -> None:
    """Store ``array`` under ``name`` together with ``key`` in ``path``, atomically."""
    path, name, meta = _path(path), _array_name(name), _key_json(key)
    try:
        a = np.asarray(array)
    except ValueError:  # a ragged list: NumPy cannot make one array of it
        raise TypeError(f"array must be a numeric or str array (one shape), got {checks.describe(array)}") from None
    if a.dtype.hasobject:  # np.load(allow_pickle=False) could never read it back: a cache that always misses
        raise TypeError(f"array must be a numeric or str array, got {checks.describe(a)}")
    atomic_write(path, lambda fh: np.savez(fh, **{name: a}, meta=np.array(meta)))


def write_or_warn(path, key: dict, name: str, array, what: str = "cache", stacklevel: int = 3) -> bool:
    """``write_array``, but a folder that cannot be written (read-only, full) warns instead of raising.

    The caller has already computed ``array`` and returns it either way: a cache that cannot be kept
    costs a recomputation next time, never the answer. Returns whether the file was written.
    """
    what = checks.text("what", what)
    stacklevel = checks.positive_int("stacklevel", stacklevel)
    try:
        write_array(path, key, name, array)
    except OSError as err:
        warnings.warn(f"could not write the {what} {path} ({err.__class__.__name__}: {err}); the result is "
                      "returned but will be computed again next time", RuntimeWarning, stacklevel=stacklevel)
        return False
    return True


#: The file, written last, that lists a built folder's key and every file's SHA-256 (``built_folder``).
FOLDER_MARKER = "recsuite-folder.json"


def _listed_files(folder: Path, key: dict) -> dict | None:
    """The ``{file name: SHA-256}`` that ``folder``'s marker lists when it was built for ``key``, else None (no
    marker, an unreadable one, another key, or no file listed). Reads the marker only, hashes nothing."""
    try:
        marker = json.loads((folder / FOLDER_MARKER).read_text())
        files = marker.pop("files")
        if json.loads(_key_json(marker)) != json.loads(_key_json(key)) or not isinstance(files, dict) or not files:
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return files


def _files_match(folder: Path, files: dict) -> bool:
    """Whether every file that ``files`` lists is in ``folder`` with that SHA-256 (each file read in full)."""
    try:
        return all(isinstance(digest, str) and sha256_file(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, TypeError):
        return False


def folder_is_whole(folder, key: dict) -> bool:
    """Whether ``folder`` was built whole for ``key``: its marker holds ``key`` and every listed file's SHA-256
    matches (every file read in full, every time: never trusted by size or mtime)."""
    try:
        folder = _path(folder)
    except (TypeError, ValueError):
        return False
    files = _listed_files(folder, key)
    return files is not None and _files_match(folder, files)


def _use_if_whole(folder: Path, key: dict, use):
    """``(True, use(folder))`` when ``folder`` is whole for ``key``, else ``(False, None)``.

    ``use`` runs while the files are hashed in a background thread (``hashlib`` and file reads release the GIL:
    the hashing of a large file overlaps a load that is mostly Python), and its result is handed out only once
    every hash has matched. When a hash does not match, the result is dropped, and so is an exception that
    ``use`` raised (a damaged file may well fail to load); when they all match, the exception propagates.
    """
    files = _listed_files(folder, key)
    if files is None:
        return False, None
    with ThreadPoolExecutor(1, thread_name_prefix="recsuite-verify") as pool:
        check = pool.submit(_files_match, folder, files)
        try:
            result = use(folder)
        except Exception:
            if check.result():
                raise
            return False, None
        return (True, result) if check.result() else (False, None)


def built_folder(folder, key: dict, build, use=None):
    """``folder``, filled once by ``build(tmp)`` and trusted by content: the one way the package caches a set of files.

    ``build`` writes the files into an empty temporary folder beside ``folder``; then a marker listing ``key`` and
    every file's SHA-256 is written last and the folder renamed into place, so two processes building it at once
    leave one whole copy. A folder whose marker is missing, holds another key or lists a file that no longer
    matches is rebuilt (hashing the files costs a read of them, far less than building them).

    With ``use`` (a function ``use(folder)``, e.g. one that loads a model from the files), the result is
    ``use(folder)`` instead of the folder: on an existing folder ``use`` runs while the files are hashed in a
    background thread, and its result is returned only when every hash matches; on a damaged folder it is
    discarded (or the error ``use`` raised on it), the folder rebuilt and ``use`` run on the new copy. Nothing
    read from a damaged folder is ever handed out, and the check costs no wall time beside a slower ``use``.
    """
    folder = _path(folder)
    _key_json(key)
    if not callable(build):
        raise TypeError(f"build must be a function build(folder) that writes the files, got {checks.describe(build)}")
    if use is not None and not callable(use):
        raise TypeError(f"use must be None or a function use(folder) that reads the files, got {checks.describe(use)}")
    if use is None:
        if folder_is_whole(folder, key):
            return folder
    else:
        whole, result = _use_if_whole(folder, key, use)
        if whole:
            return result
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        build(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        if not files:
            raise ValueError(f"build wrote no file into the folder for {folder}")
        marker = json.dumps({**json.loads(_key_json(key)), "files": files}, indent=1, sort_keys=True)
        atomic_write(tmp / FOLDER_MARKER, lambda fh: fh.write(marker), text=True)
        if folder.exists():  # damaged (a whole one returned above), or another process's just finished
            if folder_is_whole(folder, key):
                return folder if use is None else use(folder)
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process renamed its whole copy into place first
            if not folder_is_whole(folder, key):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder if use is None else use(folder)
