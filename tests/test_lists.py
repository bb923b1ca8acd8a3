"""recsuite.data.lists: example users by a rule on the split, recent history, side-by-side lists with hits marked."""
import numpy as np
import pandas as pd
import pytest

from recsuite.data import lists as L
from recsuite.data import split as S


def protocol():
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, 9):  # user u rates 4 + u items: activity grows with the id
        items = rng.choice(np.arange(100, 130), size=4 + u, replace=False)
        rows += [(u, int(i), 4, 1000 * t) for t, i in enumerate(items)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return S.make_protocol(df, cold_frac=0.1, seed=0)


def titles_frame(proto):
    ids = proto.index.item_ids
    return pd.DataFrame({"item_id": ids[::-1], "title": [f"Movie {i}" for i in ids[::-1]]})


def _popular_hit_users(proto, eval_set, popular):
    """The rule of example_users, one user at a time: a held-out item among the user's most popular unseen items."""
    history, truth = proto.history(eval_set), proto.csr(eval_set)
    counts = np.asarray(history.sum(axis=0)).ravel()
    ranked = sorted(np.flatnonzero(proto.catalogue(eval_set)), key=lambda i: (-counts[i], i))
    users = []
    for u in range(proto.n_users):
        unseen = [i for i in ranked if i not in set(history[u].indices)][:popular]
        if set(unseen) & set(truth[u].indices):
            users.append(u)
    return np.array(users)


def test_example_users_follow_history_size_among_users_a_popular_list_can_hit():
    proto = protocol()
    users = L.example_users(proto, "test", n=2, popular=3)
    sizes = np.diff(proto.history("test").indptr)
    eligible = _popular_hit_users(proto, "test", 3)
    assert 2 <= eligible.size < np.count_nonzero(np.diff(proto.csr("test").indptr))  # the filter removes someone
    order = eligible[np.lexsort((eligible, sizes[eligible]))]
    assert users.tolist() == [order[round((order.size - 1) / 3)], order[round(2 * (order.size - 1) / 3)]]
    assert sizes[users[0]] <= sizes[users[1]]
    assert L.example_users(proto, "test", n=1, popular=3).tolist() == [order[round((order.size - 1) / 2)]]
    cold = np.flatnonzero(np.diff(proto.csr("cold_test").indptr) > 0)  # no popularity on new items: every user
    assert L.example_users(proto, "cold_test", n=1).tolist() == [cold[np.lexsort((cold, sizes[cold]))][
        round((cold.size - 1) / 2)]]
    with pytest.raises(ValueError, match="popular must be"):
        L.example_users(proto, "test", popular=0)
    with pytest.raises(ValueError, match="n must be at most"):
        L.example_users(proto, "test", n=100)
    with pytest.raises(ValueError, match="eval_set"):
        L.example_users(proto, "train")
    with pytest.raises(TypeError, match="protocol must be"):
        L.example_users("proto")


def test_titles_align_with_the_index_and_refuse_missing_ones():
    proto = protocol()
    titles = L.item_titles(titles_frame(proto), proto.index)
    assert titles.tolist() == [f"Movie {i}" for i in proto.index.item_ids]
    with pytest.raises(ValueError, match="got none for item_id"):
        L.item_titles(titles_frame(proto).iloc[1:], proto.index)
    with pytest.raises(ValueError, match="missing \\['title'\\]"):
        L.item_titles(titles_frame(proto).drop(columns="title"), proto.index)


def test_recent_history_is_newest_first_and_from_the_right_history():
    proto = protocol()
    titles = L.item_titles(titles_frame(proto), proto.index)
    user = int(L.example_users(proto)[1])
    got = L.recent_history(proto, user, titles, "test", n=3)
    hist = proto.history_frame("test")
    newest = hist[hist.user_idx == user].sort_values("timestamp", ascending=False).head(3)
    assert got.title.tolist() == titles[newest.item_idx].tolist()
    assert list(got.index) == [1, 2, 3] and got.date.iloc[0] == "1970-01-01"
    valid_hist = L.recent_history(proto, user, titles, "valid", n=50)
    assert len(valid_hist) == (proto.train.user_idx == user).sum()   # valid sees train only
    with pytest.raises(ValueError, match="titles must have one title per item"):
        L.recent_history(proto, user, titles[:-1])
    with pytest.raises(ValueError, match="user must be an int in"):
        L.recent_history(proto, proto.n_users, titles)


def test_side_by_side_marks_hits_and_padding():
    titles = np.array(["A", "B", "C", "D"], dtype=object)
    table = L.side_by_side({"pop": np.array([0, 1, 2]), "als": np.array([3, 2, -1])}, titles, truth=[2])
    assert table["pop"].tolist() == ["A", "B", L.HIT_MARK + "C"]
    assert table["als"].tolist() == ["D", L.HIT_MARK + "C", ""]
    assert list(table.index) == [1, 2, 3] and table.index.name == "rank"
    with pytest.raises(ValueError, match="same length"):
        L.side_by_side({"a": np.array([0, 1]), "b": np.array([0])}, titles)
    with pytest.raises(ValueError, match="item indices in \\[0, 3\\]"):
        L.side_by_side({"a": np.array([0, 4])}, titles)
    with pytest.raises(ValueError, match="1-D integer"):
        L.side_by_side({"a": np.array([0.0, 1.0])}, titles)
    with pytest.raises(TypeError, match="non-empty mapping"):
        L.side_by_side([np.array([0])], titles)


def test_side_by_side_refuses_a_list_that_repeats_an_item():
    titles = np.array(["A", "B", "C", "D"], dtype=object)
    with pytest.raises(ValueError, match=r"lists\['als'\] must hold each item once, got item 0 2 times"):
        L.side_by_side({"pop": np.array([1, 2, 3]), "als": np.array([0, 1, 0])}, titles)
    table = L.side_by_side({"als": np.array([0, -1, -1])}, titles)  # repeated padding is fine
    assert table["als"].tolist() == ["A", "", ""]


def test_a_missing_title_is_never_shown_as_nan():
    proto = protocol()
    frame = titles_frame(proto)
    first, second = proto.index.item_ids[:2]
    frame.loc[frame.item_id == first, "title"] = np.nan
    frame.loc[frame.item_id == second, "title"] = None
    titles = L.item_titles(frame, proto.index)
    assert titles[:2].tolist() == [f"(untitled item {first})", f"(untitled item {second})"]
    assert "nan" not in " ".join(titles.tolist()).lower()
    raw = np.array(["A", np.nan, "C"], dtype=object)
    with pytest.raises(ValueError, match=r"titles has no title \(NaN or None\) at item index \[1\]"):
        L.side_by_side({"a": np.array([0, 1])}, raw)
    user = int(L.example_users(proto)[0])
    with pytest.raises(ValueError, match="titles has no title"):
        L.recent_history(proto, user, np.where(np.arange(proto.n_items) == 0, None, titles))


def test_item_titles_refuses_two_titles_for_one_item_and_ids_of_another_kind():
    proto = protocol()
    frame = titles_frame(proto)
    clash = pd.concat([frame, pd.DataFrame({"item_id": [frame.item_id.iloc[0]], "title": ["Another"]})])
    with pytest.raises(ValueError, match=f"got several for item_id \\[{frame.item_id.iloc[0]}\\]"):
        L.item_titles(clash, proto.index)
    assert L.item_titles(pd.concat([frame, frame]), proto.index).tolist() == L.item_titles(frame, proto.index).tolist()
    with pytest.raises(TypeError, match=r"items\['item_id'\] must hold integer ids like index.item_ids"):
        L.item_titles(frame.assign(item_id=frame.item_id.astype(str)), proto.index)
