"""MovieLens, read from files that are already on the machine and checked before use.

MovieLens-100K (Harper & Konstan 2015, doi:10.1145/2827872) ships inside the RecBole wheel in RecBole's
atomic-file format. Its licence forbids redistribution, so recsuite never copies it: it reads the
installed package and verifies each file's SHA-256 first. Larger MovieLens releases can be downloaded from
GroupLens when the machine is online (``load_movielens``); no lesson needs them.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.core.cache import atomic_write, sha256_file
from recsuite.core.optional import require
from recsuite.core.paths import data_home

# SHA-256 of the ML-100K atomic files in recbole==1.2.1 (recbole/dataset_example/ml-100k/).
ML100K_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
# Releases load_movielens can download, with the files inside each zip it reads.
GROUPLENS_RELEASES = {
    "ml-1m": {"ratings": "ml-1m/ratings.dat", "movies": "ml-1m/movies.dat", "users": "ml-1m/users.dat"},
}


@dataclass(frozen=True)
class MovieLens:
    """Three tidy tables: ``interactions`` (user_id, item_id, rating, timestamp), ``items`` (item_id,
    title, year, genres as a list of str) and ``users`` (user_id, age, gender, occupation, zip_code).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    name: str = "ml-100k"

    def summary(self) -> pd.Series:
        """Counts a data card quotes: users, items, interactions, density, time span."""
        inter = self.interactions
        n_u, n_i = inter.user_id.nunique(), inter.item_id.nunique()
        t = pd.to_datetime(inter.timestamp, unit="s")
        return pd.Series(
            {
                "users": n_u,
                "items": n_i,
                "interactions": len(inter),
                "density": round(len(inter) / (n_u * n_i), 4),
                "first": str(t.min().date()),
                "last": str(t.max().date()),
            },
            name=self.name,
        )


def movielens_100k_dir() -> Path:
    """The folder of the ML-100K atomic files inside the installed RecBole package.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    try:
        recbole = require("recbole", "cf")
    except ImportError as err:  # pragma: no cover - recbole is a pinned dependency
        raise FileNotFoundError(
            "MovieLens-100K is read from the RecBole package, which is not installed; "
            "run `make venv` (or `pip install recbole==1.2.1`)"
        ) from err
    return Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k"


def _checked(folder: Path, name: str, verify: bool) -> Path:
    path = Path(folder) / name
    fix = "reinstall RecBole: `pip install --force-reinstall --no-deps recbole==1.2.1`"
    if not path.is_file():
        raise FileNotFoundError(f"MovieLens-100K file {path} is missing; {fix}")
    if verify:
        got = sha256_file(path)
        if got != ML100K_SHA256[name]:
            raise ValueError(
                f"MovieLens-100K file {path} has SHA-256 {got}, expected {ML100K_SHA256[name]} "
                f"(the file was altered or comes from another RecBole version); {fix}"
            )
    return path


def _parse_year(values: pd.Series) -> pd.Series:
    # Two items have no usable year: 267 ('unkonwn', sic) and 1412 (empty field).
    return pd.to_numeric(values.where(values.str.fullmatch(r"\d{4}")), errors="coerce").astype("Int64")


def load_movielens_100k(data_dir: str | Path | None = None, verify: bool = True) -> MovieLens:
    """Load MovieLens-100K from the RecBole package, verifying SHA-256 checksums.

    ``genres`` is a list of genre names; the two items tagged only 'unknown' get an empty list.
    ``data_dir`` points elsewhere (a copy of RecBole's atomic files); ``verify=False`` skips checksums.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    verify = checks.flag("verify", verify)
    if data_dir is not None and not isinstance(data_dir, (str, Path)):
        raise TypeError(f"data_dir must be a str or Path or None, got {checks.describe(data_dir)}")
    folder = Path(data_dir) if data_dir is not None else movielens_100k_dir()
    paths = {name: _checked(folder, name, verify) for name in ML100K_SHA256}

    inter = pd.read_csv(paths["ml-100k.inter"], sep="\t", dtype="int64")
    inter.columns = ["user_id", "item_id", "rating", "timestamp"]

    items = pd.read_csv(paths["ml-100k.item"], sep="\t", dtype=str, keep_default_na=False)
    items.columns = ["item_id", "title", "year", "genres"]
    items["item_id"] = items.item_id.astype("int64")
    items["year"] = _parse_year(items.year)
    items["genres"] = [[g for g in s.split() if g != "unknown"] for s in items.genres]

    users = pd.read_csv(paths["ml-100k.user"], sep="\t", dtype=str, keep_default_na=False)
    users.columns = ["user_id", "age", "gender", "occupation", "zip_code"]
    users["user_id"] = users.user_id.astype("int64")
    users["age"] = users.age.astype("int64")

    return MovieLens(
        interactions=inter.reset_index(drop=True),
        items=items.sort_values("item_id").reset_index(drop=True),
        users=users.sort_values("user_id").reset_index(drop=True),
        name="ml-100k",
    )


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError) as err:
        raise ConnectionError(
            f"could not download {url} ({err}). This machine appears to be offline: the lessons use "
            "MovieLens-100K, which needs no download (load_movielens_100k()); to use a larger release, "
            "run this on a machine with internet access once, or download the zip yourself and pass "
            "zip_path=..."
        ) from err


def _parse_ml1m(zf: zipfile.ZipFile, files: dict[str, str]) -> MovieLens:
    def table(member: str, names: list[str]) -> pd.DataFrame:
        text = zf.read(member).decode("latin-1")
        rows = [line.split("::") for line in text.splitlines() if line]
        return pd.DataFrame(rows, columns=names)

    inter = table(files["ratings"], ["user_id", "item_id", "rating", "timestamp"]).astype("int64")
    movies = table(files["movies"], ["item_id", "title", "genres"])
    movies["item_id"] = movies.item_id.astype("int64")
    year = movies.title.str.extract(r"\((\d{4})\)\s*$")[0]
    movies["year"] = pd.to_numeric(year, errors="coerce").astype("Int64")
    movies["title"] = movies.title.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
    movies["genres"] = [[g for g in s.split("|") if g and g != "unknown"] for s in movies.genres]
    users = table(files["users"], ["user_id", "gender", "age", "occupation", "zip_code"])
    users = users.astype({"user_id": "int64", "age": "int64"})[
        ["user_id", "age", "gender", "occupation", "zip_code"]
    ]
    return MovieLens(inter, movies[["item_id", "title", "year", "genres"]], users, name="ml-1m")


def load_movielens(
    name: str = "ml-100k", zip_path: str | Path | None = None, timeout: float = 10.0
) -> MovieLens:
    """Load a MovieLens release: ``ml-100k`` offline from RecBole, ``ml-1m`` from GroupLens.

    Downloads are verified against the MD5 sum GroupLens publishes beside each zip and cached under
    ``datasets/`` with that sum beside them (``<name>.zip.md5``); the cached zip is checked against it by
    content on every load. Offline, the download fails at once with a ``ConnectionError`` that says what to
    do. ``zip_path`` is a zip you downloaded yourself (read as it is). No lesson needs this; it is here for
    learners who want a bigger dataset.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    checks.one_of("name", name, ("ml-100k", *GROUPLENS_RELEASES))
    timeout = checks.positive_number("timeout", timeout)
    if zip_path is not None and (not isinstance(zip_path, (str, os.PathLike)) or str(zip_path).strip() == ""):
        raise TypeError(f"zip_path must be None or a zip file name (str or os.PathLike), "
                        f"got {checks.describe(zip_path)}")
    if name == "ml-100k":
        if zip_path is not None:
            raise ValueError(f"zip_path is for the downloaded releases {list(GROUPLENS_RELEASES)}; ml-100k is read "
                             f"from RecBole; load_movielens_100k(data_dir=...) reads a copy; got zip_path={zip_path!r}")
        return load_movielens_100k()
    if zip_path is None:
        payload = _cached_release(name, timeout)
    else:
        payload = Path(zip_path).read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            return _parse_ml1m(zf, GROUPLENS_RELEASES[name])
    except (zipfile.BadZipFile, KeyError) as err:  # KeyError: a member missing from the zip
        raise ValueError(f"{zip_path or name} is not a GroupLens {name} zip with "
                         f"{list(GROUPLENS_RELEASES[name].values())} ({err})") from None


def _cached_release(name: str, timeout: float) -> bytes:
    """The zip of a GroupLens release from ``datasets/raw/``, verified by its MD5 sum; downloaded when absent."""
    zip_path = data_home() / "raw" / f"{name}.zip"
    sum_path = zip_path.with_name(zip_path.name + ".md5")
    if zip_path.is_file() and sum_path.is_file():
        payload, expected = zip_path.read_bytes(), sum_path.read_text().strip()
        if hashlib.md5(payload).hexdigest() != expected:
            raise ValueError(f"{zip_path} has MD5 {hashlib.md5(payload).hexdigest()}, not the {expected} recorded at "
                             "download (the file was altered or truncated); delete it to download it again")
        return payload
    url = GROUPLENS_URL.format(name=name)  # absent, or cached without its sum: fetch and verify it
    payload = _download(url, timeout)
    expected = _download(url + ".md5", timeout).decode().split()[0].strip().lower()
    got = hashlib.md5(payload).hexdigest()
    if got != expected:
        raise ValueError(f"{url} has MD5 {got}, but GroupLens publishes {expected}; try again")
    atomic_write(zip_path, lambda fh: fh.write(payload))
    atomic_write(sum_path, lambda fh: fh.write(expected + "\n"), text=True)
    return payload


def clean_interactions(
    interactions: pd.DataFrame, rating_range: tuple[float, float] = (1, 5)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop unusable rows and say what was removed and why.

    Steps, in order: rows with a missing field; ratings outside ``rating_range``; repeated
    (user, item) pairs, keeping the latest. Returns the clean table and a report with one row per step
    (``step``, ``removed``, ``reason``, ``remaining``), zero-removal steps included.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    required = ["user_id", "item_id", "rating", "timestamp"]
    checks.columns("interactions", interactions, required)
    for col in ("rating", "timestamp"):  # a rating range and "the latest" need numbers (missing ones are dropped)
        if interactions[col].dtype == bool or not pd.api.types.is_numeric_dtype(interactions[col].dtype):
            raise TypeError(f"interactions[{col!r}] must hold numbers, got dtype {interactions[col].dtype}")
    if not isinstance(rating_range, (tuple, list)) or len(rating_range) != 2:
        raise TypeError(f"rating_range must be a (low, high) pair, got {rating_range!r}")
    lo = checks.number("rating_range[0]", rating_range[0])
    hi = checks.number("rating_range[1]", rating_range[1])
    if lo > hi:
        raise ValueError(f"rating_range must be (low, high) with low <= high, got {tuple(rating_range)!r}")
    steps = []
    df = interactions[required]

    def step(name: str, keep: np.ndarray, reason: str) -> None:
        nonlocal df
        removed = int((~keep).sum())
        df = df[keep]
        steps.append({"step": name, "removed": removed, "reason": reason, "remaining": len(df)})

    step("missing values", df.notna().all(axis=1).to_numpy(), "a row without user, item, rating or time")
    step(
        "rating out of range",
        df.rating.between(lo, hi).to_numpy(),
        f"rating outside [{lo}, {hi}]",
    )
    latest = df.sort_values(["timestamp"], kind="stable").duplicated(["user_id", "item_id"], keep="last")
    step(
        "duplicate user-item",
        ~latest.reindex(df.index).to_numpy(),
        "the same user rated the same item again; the latest rating is kept",
    )
    return df.reset_index(drop=True), pd.DataFrame(steps)
