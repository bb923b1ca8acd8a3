"""The MovieLens loader: checksums, parsing, error paths, cleaning report."""

import shutil
import zipfile

import pandas as pd
import pytest

from recsuite import data as D


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
