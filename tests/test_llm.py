"""recsuite.models.profiles: template profile texts by hand, and the Hugging Face generator's plumbing and cache."""

import json

import numpy as np
import pandas as pd
import pytest

from recsuite.models import causal_lm, profiles

USER = {"user_id": 7, "age": 24, "gender": "M", "occupation": "technician"}


def items_frame():
    return pd.DataFrame(
        {
            "item_id": [1, 2, 3, 4, 5, 6],
            "title": ["Contact", "Fargo", "Alien", "Usual Suspects, The", "Mystery Film", "Toy Story"],
            "year": pd.array([1997, 1996, 1979, 1995, pd.NA, 1995], dtype="Int64"),
            "genres": [
                ["Drama", "Sci-Fi"],
                ["Crime", "Drama", "Thriller"],
                ["Action", "Horror", "Sci-Fi", "Thriller"],
                ["Crime", "Thriller"],
                ["Sci-Fi"],
                ["Animation", "Comedy"],
            ],
        }
    )


def history_frame():
    times = {1: 300, 2: 200, 3: 100, 4: 400, 5: 50}
    hist = items_frame().iloc[:5].copy()
    hist["timestamp"] = hist.item_id.map(times)
    return hist


# --------------------------------------------------------------------------------------------- template backend


def test_profile_text_by_hand():
    # Genre counts: Sci-Fi 3, Thriller 3, Crime 2, Drama 2, ... -> the tie is broken alphabetically.
    # Median year of (1997, 1996, 1979, 1995) = 1995.5 -> the 1990s. Newest first: 400, 300, 200.
    text = profiles.profile_text(USER, history_frame(), max_recent=3)
    assert text == (
        "A 24-year-old technician who has watched 5 films, mostly sci-fi and thrillers from the 1990s; "
        "recently watched The Usual Suspects (1995); Contact (1997); Fargo (1996)."
    )
    five = profiles.profile_text(USER, history_frame(), max_recent=5, top_genres=3)
    assert "mostly sci-fi, thrillers and crime" in five
    assert five.endswith("Fargo (1996); Alien (1979); Mystery Film.")  # no year: no "()"


def test_profile_text_articles_and_missing_fields():
    hist = history_frame()
    assert profiles.profile_text({"age": 18, "occupation": "engineer"}, hist).startswith("An 18-year-old engineer who")
    assert profiles.profile_text({"age": 8, "occupation": "student"}, hist).startswith("An 8-year-old student who")
    assert profiles.profile_text({"age": np.nan, "occupation": "engineer"}, hist).startswith("An engineer who")
    assert profiles.profile_text({"age": 30, "occupation": "other"}, hist).startswith("A 30-year-old person who")
    assert profiles.profile_text(USER, hist.iloc[:0]) == "A 24-year-old technician who has not watched any films yet."
    one = profiles.profile_text(USER, hist.iloc[[4]])
    assert one == "A 24-year-old technician who has watched 1 film, mostly sci-fi; recently watched Mystery Film."


def test_profile_text_custom_template_and_errors():
    text = profiles.profile_text(USER, history_frame(), template="{gender} | {occupation} | {top_genres_raw}")
    assert text == "man | technician | Sci-Fi, Thriller"
    with pytest.raises(TypeError, match="user_row"):
        profiles.profile_text([24, "technician"], history_frame())
    with pytest.raises(ValueError, match="max_recent"):
        profiles.profile_text(USER, history_frame(), max_recent=0)
    with pytest.raises(ValueError, match="items_df must have columns"):
        profiles.profile_text(USER, history_frame().drop(columns="genres"))


def test_profile_texts_matches_profile_text_per_user():
    items = items_frame()
    users = pd.DataFrame(
        {
            "user_id": [9, 7, 3],
            "age": [40, 24, 31],
            "gender": ["F", "M", "F"],
            "occupation": ["writer", "technician", "artist"],
        }
    )
    h = history_frame()
    inter = pd.concat(
        [
            h[["item_id", "timestamp"]].assign(user_id=7),
            pd.DataFrame({"user_id": [9, 9], "item_id": [6, 2], "timestamp": [10, 20]}),
        ]
    )
    out = profiles.profile_texts(users, inter, items, max_recent=3)
    assert list(out.index) == [9, 7, 3] and out.name == "profile"
    assert out[7] == profiles.profile_text(USER, h, max_recent=3)
    assert out[9] == (
        "A 40-year-old writer who has watched 2 films, mostly animation and comedies from the 1990s; "
        "recently watched Fargo (1996); Toy Story (1995)."
    )
    assert out[3] == "A 31-year-old artist who has not watched any films yet."


def test_profile_texts_rejects_bad_input():
    items, users = items_frame(), pd.DataFrame({"user_id": [1], "age": [30], "occupation": ["artist"]})
    inter = pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": [0]})
    with pytest.raises(ValueError, match="backend"):
        profiles.profile_texts(users, inter, items, backend="gpt")
    with pytest.raises(ValueError, match="generator"):
        profiles.profile_texts(users, inter, items, backend="hf")
    with pytest.raises(ValueError, match="interactions_df"):
        profiles.profile_texts(users, inter.drop(columns="timestamp"), items)
    with pytest.raises(ValueError, match="item_ids missing from items_df"):
        profiles.profile_texts(users, inter.assign(item_id=99), items)
    with pytest.raises(ValueError, match="users_df"):
        profiles.profile_texts(pd.concat([users, users]), inter, items)


# --------------------------------------------------------------------------------------------- HF backend


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory, tiny_lm_builder):
    return tiny_lm_builder(tmp_path_factory.mktemp("tiny-gpt2"), seed=0)


PROMPTS = ["Profile: a viewer who", "Films watched, newest first:\n- Fargo (1996)\nProfile:", "x" * 700]


def test_a_gguf_model_is_loaded_while_its_copy_is_checked(tiny_lm, tmp_path, monkeypatch):
    """``load_causal_lm`` hands the load itself to ``dequantised_copy`` (``use=``): the copy's hashes are checked
    in the background while the weights load, and the model is what that checked load returned."""
    gguf, fingerprint = tmp_path / "tiny.gguf", f"test-{tmp_path.name}"  # a key no other test loads
    gguf.write_bytes(b"GGUF")
    calls = []

    def checked_copy(path, fp, cache_dir=None, use=None):
        calls.append((path, fp, callable(use)))
        return use(tiny_lm)  # the tiny model's folder stands in for the dequantised copy

    monkeypatch.setattr(causal_lm, "dequantised_copy", checked_copy)
    tok, net = causal_lm.load_causal_lm(str(gguf), str(gguf), fingerprint, "cpu")
    assert calls == [(str(gguf), fingerprint, True)]
    assert not net.training and tok.eos_token_id is not None and net.config.vocab_size == len(tok)


def test_hf_generator_plumbing(tiny_lm):
    """Plumbing only: a random 1-layer model writes gibberish; what is checked is loading, batching with left
    padding, greedy (deterministic) decoding, the token budget and long-prompt truncation."""
    gen = causal_lm.HFGenerator(tiny_lm, max_new_tokens=12, device="cpu", cache=False, batch_size=3)
    out = gen.generate(PROMPTS, progress=False)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert all(len(t) <= 12 for t in out)  # one character per token in this tokenizer
    assert any(out)
    again = causal_lm.HFGenerator(tiny_lm, max_new_tokens=12, device="cpu", cache=False, batch_size=1)
    assert again.generate(PROMPTS, progress=False) == out  # greedy, and padding does not change the result
    assert gen.stats == {"generated": 3, "cached": 0}
    assert "{history}" in profiles.PROMPT_TEMPLATE and gen.prompt_template == profiles.PROMPT_TEMPLATE


def test_hf_generator_cache_hit_miss_and_invalidation(tiny_lm, tmp_path, tiny_lm_builder):
    """Plumbing only (random tiny model): texts are cached with their prompt, model and settings."""
    first = causal_lm.HFGenerator(tiny_lm, max_new_tokens=8, device="cpu", cache_dir=tmp_path)
    texts = first.generate(PROMPTS[:2], progress=False)
    path = first.cache_path()
    stored = json.loads(path.read_text())
    assert stored["settings"]["model"] == first.source and stored["settings"]["max_new_tokens"] == 8
    assert sorted(e["prompt"] for e in stored["entries"].values()) == sorted(PROMPTS[:2])
    assert not list(tmp_path.glob("*.tmp"))

    second = causal_lm.HFGenerator(tiny_lm, max_new_tokens=8, device="cpu", cache_dir=tmp_path)
    calls = []
    handle = second.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        assert second.generate(PROMPTS[:2], progress=False) == texts
        assert calls == [] and second.stats == {"generated": 0, "cached": 2}  # hit: the model never ran
        second.generate(PROMPTS[1:], progress=False)  # one new prompt: a miss for it only
        assert calls and second.stats == {"generated": 1, "cached": 3}
    finally:
        handle.remove()
    assert len(json.loads(path.read_text())["entries"]) == 3

    longer = causal_lm.HFGenerator(tiny_lm, max_new_tokens=9, device="cpu", cache_dir=tmp_path)
    assert longer.cache_path() != path  # other generation settings, other cache
    other = tiny_lm_builder(tmp_path / "other-model", seed=1)
    assert causal_lm.HFGenerator(other, max_new_tokens=8, device="cpu", cache_dir=tmp_path).cache_path() != path


def test_hf_generator_chat_template(tmp_path, tiny_lm_builder):
    """Plumbing only: with a chat template the prompt is sent as a user message."""
    template = "{% for m in messages %}<{{ m['content'] }}>{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    path = tiny_lm_builder(tmp_path / "chat", seed=0, chat_template=template)
    chat = causal_lm.HFGenerator(path, max_new_tokens=6, device="cpu", cache=False)
    plain = causal_lm.HFGenerator(path, max_new_tokens=6, device="cpu", cache=False, use_chat_template=False)
    assert chat.generate(["hello"], progress=False) == plain.generate(["<hello>A:"], progress=False)


def test_profile_texts_hf_backend(tiny_lm, tmp_path):
    """Plumbing only: the hf backend fills the prompt with the user's statistics and returns the model's text."""
    users = pd.DataFrame(
        {"user_id": [7, 8], "age": [24, 30], "gender": ["M", "F"], "occupation": ["technician", "artist"]}
    )
    inter = history_frame()[["item_id", "timestamp"]].assign(user_id=7)
    gen = causal_lm.HFGenerator(tiny_lm, max_new_tokens=5, device="cpu", cache_dir=tmp_path)
    out = profiles.profile_texts(users, inter, items_frame(), backend="hf", generator=gen, max_recent=2, progress=False)
    assert list(out.index) == [7, 8] and all(isinstance(t, str) for t in out)
    prompts = [e["prompt"] for e in json.loads(gen.cache_path().read_text())["entries"].values()]
    mine = next(p for p in prompts if "24-year-old" in p)
    assert "24-year-old man, occupation: technician" in mine
    assert "Favourite genres: sci-fi and thrillers" in mine
    assert "- The Usual Suspects (1995): Crime, Thriller\n- Contact (1997): Drama, Sci-Fi" in mine
    assert any("30-year-old woman" in p for p in prompts)


def test_hf_generator_rejects_bad_input(tiny_lm, tmp_path):
    with pytest.raises(ValueError, match="model"):
        causal_lm.HFGenerator(str(tmp_path / "no-such-model"))
    with pytest.raises(ValueError, match="max_new_tokens"):
        causal_lm.HFGenerator(tiny_lm, max_new_tokens=0)
    with pytest.raises(ValueError, match="prompt_template"):
        causal_lm.HFGenerator(tiny_lm, prompt_template="no fields")
    gen = causal_lm.HFGenerator(tiny_lm, device="cpu", cache=False)
    with pytest.raises(ValueError, match="prompts"):
        gen.generate([])
    with pytest.raises(TypeError, match="prompts"):
        gen.generate("one prompt")


# --------------------------------------------------------------------------------------------- issue 12 bad input


def _frames():
    users = pd.DataFrame({"user_id": [1], "age": [24], "gender": ["M"], "occupation": ["technician"]})
    hist = history_frame()
    inter = hist.assign(user_id=1)[["user_id", "item_id", "timestamp"]]
    return users, inter, hist


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda u, i, h: profiles.profile_text(USER, "frame"), TypeError),
        (lambda u, i, h: profiles.profile_text(USER, h, top_genres=1.0), TypeError),
        (lambda u, i, h: profiles.profile_text(USER, h, template="{plot}"), ValueError),
        (lambda u, i, h: profiles.profile_text(USER, h, template=3), TypeError),
        (lambda u, i, h: profiles.profile_texts(u, i, h, backend="HF"), ValueError),
        (lambda u, i, h: profiles.profile_texts(u, i, h, generator=object()), ValueError),
        (lambda u, i, h: profiles.profile_texts(u, i, h, backend="hf", generator="gpt2"), TypeError),
        (lambda u, i, h: profiles.profile_texts(u, i, h, progress="no"), TypeError),
        (lambda u, i, h: profiles.profile_texts(u, i, h, empty_template="{nobody}"), ValueError),
        (lambda u, i, h: profiles.profile_texts(u, i.assign(user_id=[None] * len(i)), h), ValueError),
        (lambda u, i, h: profiles.profile_texts(u.to_dict(), i, h), TypeError),
        (lambda u, i, h: profiles.user_vectors("train"), ValueError),
        (lambda u, i, h: profiles.user_vectors("valid", kind="llm"), ValueError),
        (lambda u, i, h: profiles.user_vectors("valid", center="yes"), TypeError),
        (lambda u, i, h: profiles.user_vectors("valid", generator=object()), ValueError),
        (lambda u, i, h: profiles.user_vectors("valid", "text-profile", generator=object()), TypeError),
        (lambda u, i, h: causal_lm.HFGenerator(42), TypeError),
        (lambda u, i, h: profiles.user_vectors("valid", protocol="protocol"), TypeError),
        (lambda u, i, h: profiles.profile_texts(u.assign(age=[2.5]), i, h), ValueError),
        (lambda u, i, h: profiles.profile_texts(u, i.assign(timestamp=np.nan), h), ValueError),
    ],
)
def test_bad_input_table(call, error):
    with pytest.raises(error):
        call(*_frames())


def test_hf_generator_bad_arguments(tiny_lm, tmp_path):
    with pytest.raises(TypeError, match="cache"):
        causal_lm.HFGenerator(tiny_lm, cache="yes")
    with pytest.raises(TypeError, match="cache_dir"):
        causal_lm.HFGenerator(tiny_lm, cache_dir=3)
    with pytest.raises(TypeError, match="batch_size"):
        causal_lm.HFGenerator(tiny_lm, batch_size=2.0)
    gen = causal_lm.HFGenerator(tiny_lm, device="cpu", cache=False)
    with pytest.raises(TypeError, match="fields"):
        gen.prompt(["a"])
    with pytest.raises(ValueError, match="fields lacks"):
        gen.prompt({"age": 3})


def test_damaged_profile_cache_is_regenerated(tiny_lm, tmp_path):
    gen = causal_lm.HFGenerator(tiny_lm, device="cpu", max_new_tokens=3, cache_dir=tmp_path)
    first = gen.generate(["Profile:"], progress=False)
    gen.cache_path().write_text('{"settings": 1, "entries": [', encoding="utf-8")
    again = causal_lm.HFGenerator(tiny_lm, device="cpu", max_new_tokens=3, cache_dir=tmp_path)
    assert again.generate(["Profile:"], progress=False) == first and again.stats["generated"] == 1


def test_pipe_separated_genres_give_the_same_profile():
    hist = history_frame()
    piped = hist.assign(genres=hist.genres.map("|".join))
    assert profiles.profile_text(USER, piped) == profiles.profile_text(USER, hist)
    users, inter, items = _frames()
    assert profiles.profile_texts(users, inter, items.assign(genres=items.genres.map("|".join)), progress=False).equals(
        profiles.profile_texts(users, inter, items, progress=False))


def test_missing_title_is_refused_never_the_word_none():
    hist = history_frame().astype({"title": object})
    hist.loc[0, "title"] = None
    with pytest.raises(ValueError, match="title"):
        profiles.profile_text(USER, hist)


@pytest.mark.parametrize("age, error", [(24.5, ValueError), (-3, ValueError), ("old", TypeError)])
def test_bad_ages_are_refused(age, error):
    with pytest.raises(error, match="age"):
        profiles.profile_text({**USER, "age": age}, history_frame())


def test_two_generators_writing_one_cache_lose_no_text(tiny_lm, tmp_path):
    """Two processes generating for one model at once (two lessons): each keeps the other's texts.

    b reads the cache before a has written (stale: empty), generates, then writes after a: its write must
    merge with what a wrote, not replace it.
    """
    a = causal_lm.HFGenerator(tiny_lm, max_new_tokens=4, device="cpu", cache_dir=tmp_path)
    b = causal_lm.HFGenerator(tiny_lm, max_new_tokens=4, device="cpu", cache_dir=tmp_path)
    assert a.cache_path() == b.cache_path()
    real_read, reads = b._read, []

    def stale_first_read():  # b's first read (before generating) happened before a wrote anything
        reads.append(None)
        return {} if len(reads) == 1 else real_read()

    b._read = stale_first_read
    a.generate(["only a", "shared"], progress=False)
    b.generate(["only b", "shared"], progress=False)
    assert b.stats == {"generated": 2, "cached": 0}  # b did not see a's texts
    fresh = causal_lm.HFGenerator(tiny_lm, max_new_tokens=4, device="cpu", cache_dir=tmp_path)
    assert len(fresh._read()) == 3  # a's text, b's text and the shared one
    fresh.generate(["only a", "only b", "shared"], progress=False)
    assert fresh.stats == {"generated": 0, "cached": 3}
