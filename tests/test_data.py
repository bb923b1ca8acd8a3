"""The MovieLens loader: checksums, parsing, error paths, cleaning report."""

import hashlib
import os
import shutil
import zipfile

import pandas as pd
import pytest

from recsuite.core.paths import data_home
from recsuite.data import movielens as D


def test_ml100k_loads_with_known_counts():
    ml = D.load_movielens_100k()
    assert ml.interactions.shape == (100_000, 4)
    assert list(ml.interactions.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert ml.items.shape[0] == 1682 and ml.users.shape[0] == 943
    toy = ml.items.set_index("item_id").loc[1]
    assert toy.title == "Toy Story" and toy.year == 1995 and toy.genres == ["Animation", "Children's", "Comedy"]
    assert ml.items.year.isna().sum() == 2  # items 267 and 1412
    assert ml.users.set_index("user_id").loc[1].occupation == "technician"
    assert ml.summary()["interactions"] == 100_000


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    src = D.movielens_100k_dir()
    for name in ("ml-100k.inter", "ml-100k.item"):
        shutil.copy(src / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"ml-100k\.user is missing.*reinstall"):
        D.load_movielens_100k(tmp_path)


def test_altered_file_fails_the_checksum(tmp_path):
    src = D.movielens_100k_dir()
    for name in D.ML100K_SHA256:
        shutil.copy(src / name, tmp_path / name)
    with open(tmp_path / "ml-100k.inter", "a") as fh:
        fh.write("1\t1\t5\t0\n")
    with pytest.raises(ValueError, match=r"ml-100k\.inter has SHA-256"):
        D.load_movielens_100k(tmp_path)
    assert len(D.load_movielens_100k(tmp_path, verify=False).interactions) == 100_001


def test_unknown_release_and_offline_download_fail_clearly(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="name must be one of"):
        D.load_movielens("ml-3m")
    monkeypatch.setenv("RECSUITE_HOME", str(tmp_path))
    # an unroutable address makes the download fail at once, as it does offline
    monkeypatch.setattr(D, "GROUPLENS_URL", "http://127.0.0.1:9/{name}.zip")
    with pytest.raises(ConnectionError, match="offline"):
        D.load_movielens("ml-1m", timeout=2)


def test_ml1m_parser_on_a_tiny_zip(tmp_path):
    path = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::10::5::978300760\n2::10::3::978302109\n")
        zf.writestr("ml-1m/movies.dat", "10::GoldenEye (1995)::Action|Adventure|Thriller\n")
        zf.writestr("ml-1m/users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    ml = D.load_movielens("ml-1m", zip_path=path)
    assert ml.interactions.rating.tolist() == [5, 3]
    assert ml.items.iloc[0].title == "GoldenEye" and ml.items.iloc[0].year == 1995
    assert ml.items.iloc[0].genres == ["Action", "Adventure", "Thriller"]
    assert ml.users.age.tolist() == [1, 56]


def test_clean_interactions_reports_every_step():
    df = pd.DataFrame(
        {"user_id": [1, 1, 1, 2, 2], "item_id": [1, 1, 2, 3, None], "rating": [4, 5, 9, 3, 3], "timestamp": [1, 2, 3, 4, 5]}
    )
    clean, report = D.clean_interactions(df)
    assert report.step.tolist() == ["missing values", "rating out of range", "duplicate user-item"]
    assert report.removed.tolist() == [1, 1, 1]
    assert report.remaining.iloc[-1] == len(clean) == 2
    assert clean[clean.item_id == 1].rating.item() == 5  # the latest rating is kept
    with pytest.raises(ValueError, match="missing"):
        D.clean_interactions(df.drop(columns="rating"))


@pytest.mark.parametrize("bad, err", [((5, 1), ValueError), ((1, float("nan")), ValueError),
                                      (5, TypeError), ((1, 2, 3), TypeError), (("1", 5), TypeError)])
def test_clean_interactions_refuses_a_bad_rating_range(bad, err):
    df = pd.DataFrame({"user_id": [1], "item_id": [1], "rating": [3], "timestamp": [1]})
    with pytest.raises(err, match="rating_range"):
        D.clean_interactions(df, rating_range=bad)


# -- bad input: one table per public function -------------------------------------------------------------
_INTER = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "rating": [4, 5], "timestamp": [1, 2]})


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: D.load_movielens_100k(verify="yes"), TypeError, "verify"),
        (lambda: D.load_movielens_100k(data_dir=3), TypeError, "data_dir"),
        (lambda: D.load_movielens("ml-5m"), ValueError, "name must be one of"),
        (lambda: D.load_movielens(None), ValueError, "name must be one of"),
        (lambda: D.load_movielens("ml-1m", timeout=0), ValueError, "timeout"),
        (lambda: D.load_movielens("ml-1m", timeout="10"), TypeError, "timeout"),
        (lambda: D.clean_interactions(_INTER.to_dict()), TypeError, "interactions must be a pandas DataFrame"),
        (lambda: D.clean_interactions(_INTER.drop(columns="rating")), ValueError, "missing"),
        (lambda: D.clean_interactions(_INTER, rating_range=(5, 1)), ValueError, "rating_range"),
        (lambda: D.clean_interactions(_INTER, rating_range=5), TypeError, "rating_range"),
        (lambda: D.clean_interactions(_INTER, rating_range=("1", 5)), TypeError, "rating_range"),
        (lambda: D.sha256_file(D.Path("/nonexistent/file")), FileNotFoundError, "nonexistent"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_file_rewritten_in_place_with_the_same_size_and_mtime_fails_the_checksum(tmp_path):
    src = D.movielens_100k_dir()
    for name in D.ML100K_SHA256:
        shutil.copy(src / name, tmp_path / name)
    assert len(D.load_movielens_100k(tmp_path).interactions) == 100_000  # verified once
    path = tmp_path / "ml-100k.inter"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-2] = ord("1") if data[-2] != ord("1") else ord("2")  # one digit of the last timestamp
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(ValueError, match=r"ml-100k\.inter has SHA-256"):
        D.load_movielens_100k(tmp_path)


def test_sha256_file_refuses_a_file_descriptor(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(TypeError, match="path must be a file name"):
            D.sha256_file(fd)  # open(fd) would hash it and close a descriptor the caller owns
        os.fstat(fd)  # still open
    finally:
        os.close(fd)
    assert D.sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _tiny_ml1m(path, rating="5"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", f"1::10::{rating}::978300760\n")
        zf.writestr("ml-1m/movies.dat", "10::GoldenEye (1995)::Action\n")
        zf.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")


def test_a_cached_release_is_verified_by_content_on_every_load(monkeypatch):
    raw = data_home() / "raw"
    raw.mkdir(parents=True)
    _tiny_ml1m(raw / "ml-1m.zip")
    (raw / "ml-1m.zip.md5").write_text(hashlib.md5((raw / "ml-1m.zip").read_bytes()).hexdigest() + "\n")
    assert D.load_movielens("ml-1m").interactions.rating.tolist() == [5]
    _tiny_ml1m(raw / "ml-1m.zip", rating="4")  # rewritten in place
    with pytest.raises(ValueError, match=r"ml-1m\.zip has MD5 .* not the .* recorded at download"):
        D.load_movielens("ml-1m")
    (raw / "ml-1m.zip.md5").unlink()  # no recorded sum: fetched again and verified, not trusted
    monkeypatch.setattr(D, "GROUPLENS_URL", "http://127.0.0.1:9/{name}.zip")
    with pytest.raises(ConnectionError, match="offline"):
        D.load_movielens("ml-1m", timeout=2)


def test_load_movielens_refuses_a_zip_it_would_ignore_or_cannot_read(tmp_path):
    _tiny_ml1m(tmp_path / "ml-1m.zip")
    with pytest.raises(ValueError, match="zip_path is for the downloaded releases"):
        D.load_movielens("ml-100k", zip_path=tmp_path / "ml-1m.zip")
    with pytest.raises(TypeError, match="zip_path must be None or a zip file name"):
        D.load_movielens("ml-1m", zip_path=3)
    with zipfile.ZipFile(tmp_path / "half.zip", "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::10::5::978300760\n")
    with pytest.raises(ValueError, match=r"is not a GroupLens ml-1m zip"):
        D.load_movielens("ml-1m", zip_path=tmp_path / "half.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"is not a GroupLens ml-1m zip"):
        D.load_movielens("ml-1m", zip_path=tmp_path / "junk.zip")


def test_clean_interactions_refuses_text_ratings():
    df = pd.DataFrame({"user_id": [1], "item_id": [1], "rating": ["4"], "timestamp": [1]})
    with pytest.raises(TypeError, match=r"interactions\['rating'\] must hold numbers"):
        D.clean_interactions(df)
