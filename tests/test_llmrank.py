"""recsuite.models.llmrank: KV-cache scoring equals naive scoring, zero-shot plumbing, faithfulness, bad input."""

import os

import numpy as np
import pytest
import torch

from recsuite.models import causal_lm, encoders, llmrank


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_lm_builder):
    return tiny_lm_builder(tmp_path_factory.mktemp("tiny-llama"), arch="llama")


MESSAGES = ["I have watched Alien, Fargo.", "Heat"]
CANDS = [["Toy Story (1995)", "Babe", "X"], ["Star Wars (1977)", "Scream 2 (1997)", "Ransom"]]


def test_kv_cache_scores_equal_naive_scores(tiny):
    scorer = llmrank.LMScorer(tiny, device="cpu", batch_size=2)  # 3 candidates: two chunks, the cache copied
    kv = scorer.loglik(MESSAGES, CANDS, progress=False)
    naive = scorer.loglik(MESSAGES, CANDS, method="naive", progress=False)
    assert kv.total.shape == (2, 3) and np.all(kv.total < 0)
    np.testing.assert_allclose(kv.total, naive.total, atol=1e-4)
    # characters + the end token; per_token is the ratio
    assert kv.n_tokens.tolist() == [[17, 5, 2], [17, 16, 7]]
    np.testing.assert_allclose(kv.per_token, kv.total / kv.n_tokens)
    np.testing.assert_array_equal(kv.scores("sum"), kv.total)
    one_batch = llmrank.LMScorer(tiny, device="cpu").loglik(MESSAGES, CANDS, progress=False)
    np.testing.assert_allclose(one_batch.total, kv.total, atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])  # learned positions and rotary ones
def test_packed_candidates_see_only_the_prompt_and_themselves(tmp_path, tiny_lm_builder, arch):
    """Candidates laid end to end in one pass: a candidate's score must not depend on its neighbours."""
    scorer = llmrank.LMScorer(tiny_lm_builder(tmp_path / arch, arch=arch), device="cpu")
    alone = [scorer.loglik(MESSAGES[:1], [[c]], progress=False).total[0, 0] for c in CANDS[0]]
    together = scorer.loglik(MESSAGES[:1], [CANDS[0]], progress=False).total[0]
    reversed_ = scorer.loglik(MESSAGES[:1], [CANDS[0][::-1]], progress=False).total[0][::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(reversed_, alone, atol=1e-5)
    naive = scorer.loglik(MESSAGES[:1], [CANDS[0]], method="naive", progress=False).total[0]
    np.testing.assert_allclose(together, naive, atol=1e-4)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("batch_size", [1, 2, 32])
def test_shared_prompt_start_chunks_and_one_token_candidates_match_naive(tmp_path, tiny_lm_builder, arch,
                                                                         batch_size):
    """Prompts that begin alike share one cache of their common tokens (cut back after each prompt), chunks of
    ``batch_size`` run over the prompt's cache, and a one-token candidate has no token of its own to run."""
    path = tiny_lm_builder(tmp_path / arch, arch=arch)
    messages = ["I have watched Alien, Fargo.", "I have watched Heat.", "I have watched Heat.", "I have"]
    cands = [["X", "Babe", "Toy Story (1995)"], ["Y", "Ransom", "Heat (1995)"], ["Z", "Q", "Ransom"],
             ["I", "Babe", "W"]]
    for end in (True, False):  # without the end token "X" is a single token: only the prompt predicts it
        scorer = llmrank.LMScorer(path, device="cpu", end_of_answer=end, batch_size=batch_size)
        kv = scorer.loglik(messages, cands, progress=False)
        naive = scorer.loglik(messages, cands, method="naive", progress=False)
        np.testing.assert_allclose(kv.total, naive.total, atol=1e-4)
        alone = [scorer.loglik([m], [row], progress=False).total[0] for m, row in zip(messages, cands)]
        np.testing.assert_allclose(kv.total, alone, atol=1e-5)  # no prompt's score depends on the others
        assert kv.n_tokens[0, 0] == 1 + end


def test_loglik_by_hand(tiny):
    scorer = llmrank.LMScorer(tiny, device="cpu")
    tok, net = scorer.tokenizer, scorer.model
    prefix = tok(MESSAGES[0] + "\n")["input_ids"]  # no chat template: message + newline, BOS from the tokenizer
    cand = tok("Babe", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(net(torch.tensor([prefix + cand])).logits[0], -1)
    want = sum(logp[len(prefix) - 1 + t, c].item() for t, c in enumerate(cand))
    got = scorer.loglik([MESSAGES[0]], [["Babe"]], progress=False).total[0, 0]
    assert got == pytest.approx(want, abs=1e-5)
    without_end = llmrank.LMScorer(tiny, device="cpu", end_of_answer=False).loglik([MESSAGES[0]], [["Babe"]],
                                                                                  progress=False)
    assert without_end.n_tokens[0, 0] == 4 and without_end.total[0, 0] > got  # one probability fewer


def test_chat_template_prompt(tmp_path, tiny_lm_builder):
    path = tiny_lm_builder(tmp_path / "chat", arch="llama",
                           chat_template="{% for m in messages %}<{{ m['content'] }}>{% endfor %}"
                                         "{% if add_generation_prompt %}A:{% endif %}")
    scorer = llmrank.LMScorer(path, device="cpu")
    assert scorer.prompt("hi") == "<hi>A:"
    assert llmrank.LMScorer(path, device="cpu", use_chat_template=False).prompt("hi") == "hi\n"


def test_zero_shot_and_orders(tiny):
    scorer = llmrank.LMScorer(tiny, device="cpu")
    titles = np.array(["Alien (1979)", "Fargo (1996)", "Heat (1995)", "Babe (1995)", "Toy Story (1995)"], dtype=object)
    cands = np.array([[2, 3, 4, -1], [4, 0, 3, 2]])
    ll = llmrank.zero_shot(scorer, [np.array([0, 1]), np.array([1])], cands, titles, m=3, progress=False)
    msg = llmrank.history_message(["Alien (1979)", "Fargo (1996)"])
    direct = scorer.loglik([msg], [["Heat (1995)", "Babe (1995)", "Toy Story (1995)"]], progress=False)
    np.testing.assert_allclose(ll.total[0], direct.total[0], atol=1e-5)
    order = llmrank.order_by(cands[:, :3], np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 2.0]]))
    assert order.tolist() == [[3, 4, 2], [3, 4, 0]]  # ties keep the candidates' order
    assert llmrank.history_message(["a", "b", "c"], max_items=2).splitlines()[1:3] == ["- b", "- c"]
    listwise = llmrank.listwise_message(["a"], ["x", "y"])
    assert "1. x\n2. y" in listwise


def test_zero_shot_bad_input(tiny):
    scorer = llmrank.LMScorer(tiny, device="cpu")
    titles = np.array(["A", "B", "C"], dtype=object)
    cands = np.array([[1, 2], [0, 2]])
    with pytest.raises(ValueError, match=r"histories\[1\] is empty"):
        llmrank.zero_shot(scorer, [np.array([0]), np.array([], dtype=int)], cands, titles, m=2)
    with pytest.raises(ValueError, match="m=3 is larger than the candidate lists"):
        llmrank.zero_shot(scorer, [np.array([0]), np.array([1])], cands, titles, m=3)
    with pytest.raises(ValueError, match="fewer than m=2"):
        llmrank.zero_shot(scorer, [np.array([0]), np.array([1])], np.array([[1, -1], [0, 2]]), titles, m=2)
    with pytest.raises(ValueError, match="one history per candidate row"):
        llmrank.zero_shot(scorer, [np.array([0])], cands, titles, m=2)
    with pytest.raises(TypeError, match="scorer"):
        llmrank.zero_shot("gpt", [np.array([0]), np.array([1])], cands, titles, m=2)
    with pytest.raises(ValueError, match="same length"):
        scorer.loglik(["a", "b"], [["x"], ["y", "z"]])
    with pytest.raises(ValueError, match="one list of texts per message"):
        scorer.loglik(["a", "b"], [["x"]])
    with pytest.raises(ValueError, match="method"):
        scorer.loglik(["a"], [["x"]], method="fast")
    with pytest.raises(ValueError, match="context"):
        scorer.loglik(["a" * 600], [["x"]])
    with pytest.raises(ValueError, match="normalise"):
        scorer.loglik(["a"], [["x"]], progress=False).scores("max")
    with pytest.raises(ValueError, match="NaN"):
        llmrank.order_by([[1, 2]], [[np.nan, 0.0]])
    with pytest.raises(ValueError, match="reasons"):
        llmrank.explanation_message([], "Heat")


def test_unknown_model_path_is_refused(tmp_path):
    with pytest.raises(ValueError, match="looks like a path but is not an existing directory or .gguf file"):
        llmrank.LMScorer(str(tmp_path / "no-such-model"))
    with pytest.raises(ValueError, match="without config.json"):
        llmrank.LMScorer(str(tmp_path))
    with pytest.raises(TypeError, match="model"):
        llmrank.LMScorer(42)


def test_gguf_file_identity(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + bytes(64))
    source, local, fp = encoders.model_identity(f)
    assert source == local == str(f.resolve()) and len(fp) == 16
    f.write_bytes(b"GGUF" + bytes(65))
    assert encoders.model_identity(f)[2] != fp  # another file, another fingerprint (and cache key)


def test_packaged_lm_is_installed():
    path = causal_lm.packaged_lm()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6


def test_the_packaged_gguf_is_read_through_a_verified_dequantised_copy(tmp_path):
    """One GGUF parse builds the copy; later loads read it (identical weights, none missing); a damaged copy read
    while its hashes are checked in the background is dropped, rebuilt and read again."""
    import json

    from recsuite.core.cache import FOLDER_MARKER, sha256_file

    _, gguf, fingerprint = causal_lm.lm_identity()
    folder = causal_lm.dequantised_copy(gguf, fingerprint, cache_dir=tmp_path)
    marker = json.loads((folder / FOLDER_MARKER).read_text())
    assert marker["gguf"] == fingerprint
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(marker["files"])
    weights = folder / "model.safetensors"
    stat = weights.stat()
    assert causal_lm.dequantised_copy(gguf, fingerprint, cache_dir=tmp_path) == folder
    assert weights.stat().st_ino == stat.st_ino and weights.stat().st_mtime_ns == stat.st_mtime_ns  # not rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind

    from transformers import AutoModelForCausalLM

    net, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # the tied table is stored under its own name
    assert net.config.tie_word_embeddings and torch.equal(net.lm_head.weight, net.model.embed_tokens.weight)
    tok = encoders.load_pretrained(str(folder), "model", gguf, causal=True, dtype=torch.float32)[0]
    assert tok.chat_template and tok.eos_token_id is not None
    listed = json.loads((folder / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    assert {int(i): t["content"] for i, t in listed.items()} == {
        i: t.content for i, t in tok.added_tokens_decoder.items()}
    first = {name: t.clone() for name, t in net.state_dict().items()}  # the weights are memory-mapped from the file
    del net

    raw = bytearray(weights.read_bytes())  # one byte flipped in place, size and mtime kept: a stat check trusts it
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    reads = []

    def read(where):  # as load_causal_lm reads the copy: while its files are hashed in a background thread
        reads.append(where)
        return encoders.load_pretrained(str(where), "model", gguf, causal=True, dtype=torch.float32)

    _, again = causal_lm.dequantised_copy(gguf, fingerprint, cache_dir=tmp_path, use=read)
    assert reads == [folder, folder]  # the damaged copy was read, dropped, rebuilt and read again
    rebuilt = json.loads((folder / FOLDER_MARKER).read_text())
    assert sha256_file(weights) == rebuilt["files"]["model.safetensors"] and weights.read_bytes() != bytes(raw)
    second = again.state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    inode = weights.stat().st_ino
    assert causal_lm.dequantised_copy(gguf, fingerprint, cache_dir=tmp_path, use=read)[1] is not again
    assert reads == [folder] * 3 and weights.stat().st_ino == inode  # a whole copy: read once, not rebuilt
    with pytest.raises(ValueError, match="gguf_path must be a .gguf file"):
        causal_lm.dequantised_copy(tmp_path / "missing.gguf", fingerprint, cache_dir=tmp_path)


SENTENCES = [
    # (sentence, history, recommended, named, outside)
    ("Because you watched The Usual Suspects, you may like Heat.", ["Usual Suspects, The (1995)"], "Heat (1995)",
     ("The Usual Suspects", "Heat"), ()),
    ("Fans of Star Wars love Toy Story too.", ["Alien (1979)"], "Toy Story (1995)", ("Star Wars", "Toy Story"),
     ("Star Wars",)),
    ("Heat is tense. Like Alien, it builds dread.", ["Alien (1979)"], "Heat (1995)", ("Alien",), ()),
    ('You liked Alien, so try "The Matrix".', ["Alien (1979)"], "Heat (1995)", ("Alien", "?The Matrix"),
     ("?The Matrix",)),
    ("A thriller you will enjoy.", ["Alien (1979)"], "Heat (1995)", (), ()),
    ("You liked Star Wars: Return of the Jedi.", ["Return of the Jedi (1983)"], "Heat (1995)",
     ("Star Wars", "Return of the Jedi"), ("Star Wars",)),
    # a year right after a title must be the film's own: a wrong year names a film the user never watched
    ("Both Heat (1995) and Alien (1979) are classics.", ["Alien (1979)"], "Heat (1995)",
     ("Heat (1995)", "Alien (1979)"), ()),
    ("The Usual Suspects (1997) is like Heat.", ["Usual Suspects, The (1995)"], "Heat (1995)",
     ("The Usual Suspects (1997)", "Heat"), ("The Usual Suspects (1997)",)),
    # a title-cased phrase with a year that is no catalogue title is an invented film
    ("One Flew Over the Cuckoo's Eggshell (1975) is like Alien.", ["Alien (1979)"], "Heat (1995)",
     ("?One Flew Over the Cuckoo's Eggshell (1975)", "Alien"), ("?One Flew Over the Cuckoo's Eggshell (1975)",)),
    # ... unless it ends in one: the citation is that film, not a shorter title inside it
    ("The Return of the Jedi (1983) and Heat (1995).", ["Return of the Jedi (1983)"], "Heat (1995)",
     ("Return of the Jedi (1983)", "Heat (1995)"), ()),
    ("I liked Alien and Star Wars (1977).", ["Alien (1979)"], "Heat (1995)", ("Alien", "Star Wars (1977)"),
     ("Star Wars (1977)",)),
    ("Heat (1995) is tense.", ["Alien (1979)"], "Heat (1995)", ("Heat (1995)",), ()),
    # a quoted sentence is not a film name; a quoted short title outside the catalogue is
    ('It says "You may like Heat because of Alien" here.', ["Alien (1979)"], "Heat (1995)", ("Heat", "Alien"), ()),
    ('Try *Blade Runner* after Alien.', ["Alien (1979)"], "Heat (1995)", ("?Blade Runner", "Alien"),
     ("?Blade Runner",)),
]
CATALOGUE = ["Alien (1979)", "Heat (1995)", "Star Wars (1977)", "Toy Story (1995)", "Usual Suspects, The (1995)",
             "Return of the Jedi (1983)", "Babe (1995)"]


@pytest.mark.parametrize("sentence, history, item, named, outside", SENTENCES)
def test_faithfulness_checker_on_hand_made_sentences(sentence, history, item, named, outside):
    check = llmrank.check_explanation(sentence, history, item, CATALOGUE)
    assert check.named == named
    assert check.outside == outside
    assert check.faithful == (not outside)


def test_an_explanation_is_grounded_when_it_cites_a_reason():
    history = ["Alien (1979)", "Usual Suspects, The (1995)"]
    check = llmrank.check_explanation("You may like Heat because of The Usual Suspects (1995).", history,
                                      "Heat (1995)", CATALOGUE, reasons=["Usual Suspects, The (1995)"])
    assert check.cites == ("The Usual Suspects (1995)",) and check.grounded
    vague = llmrank.check_explanation("You may like Heat because of the film you liked.", history, "Heat (1995)",
                                      CATALOGUE, reasons=["Usual Suspects, The (1995)"])
    assert vague.faithful and not vague.grounded  # names nothing false, explains nothing either
    wrong_year = llmrank.check_explanation("You may like Heat because of The Usual Suspects (1990).", history,
                                           "Heat (1995)", CATALOGUE, reasons=["Usual Suspects, The (1995)"])
    assert wrong_year.cites == () and not wrong_year.faithful
    with pytest.raises(TypeError, match="reasons"):
        llmrank.check_explanation("x", history, "Heat (1995)", CATALOGUE, reasons="Alien (1979)")


def test_named_titles_longest_match():
    cat = ["Star Wars (1977)", "Star Wars: Return of the Jedi (1983)", "Heat (1995)"]
    assert llmrank.named_titles("I loved Star Wars: Return of the Jedi and Heat.", cat) == [
        "Star Wars: Return of the Jedi", "Heat"]
    assert llmrank.named_titles("the heat of summer", cat) == []  # case-sensitive: a word is not a title
    with pytest.raises(TypeError, match="catalogue_titles"):
        llmrank.named_titles("x", "Heat")


# -- empty, blank and missing titles are refused, never scored as films -------------------------------------


@pytest.mark.parametrize("bad", ["", "   ", None, np.nan])
def test_loglik_refuses_an_empty_or_missing_candidate_naming_its_position(tiny, bad):
    scorer = llmrank.LMScorer(tiny, device="cpu")
    with pytest.raises(ValueError, match=r"candidates\[1\] must hold .* at position\(s\) \[2\]"):
        scorer.loglik(["a", "b"], [["x", "y", "z"], ["x", "y", bad]], progress=False)
    with pytest.raises(ValueError, match=r"messages must hold .* at position\(s\) \[0\]"):
        scorer.loglik([bad, "b"], [["x"], ["y"]], progress=False)


def test_zero_shot_refuses_a_blank_or_missing_title_naming_the_item(tiny):
    scorer = llmrank.LMScorer(tiny, device="cpu")
    cands = np.array([[1, 2], [0, 2]])
    for titles in (np.array(["A", "B", " "], dtype=object), np.array(["A", None, "C"], dtype=object),
                   [np.nan, "B", "C"]):
        with pytest.raises(ValueError, match=r"titles must hold .* at position\(s\) \[\d\]"):
            llmrank.zero_shot(scorer, [np.array([0]), np.array([1])], cands, titles, m=2, progress=False)
    with pytest.raises(TypeError, match="histories must be a list"):
        llmrank.zero_shot(scorer, 3, cands, ["A", "B", "C"], m=2)


def test_prompts_refuse_blank_titles_and_an_empty_history():
    with pytest.raises(ValueError, match=r"titles must hold non-empty titles, got an empty or blank str at "
                                         r"position\(s\) \[1\]"):
        llmrank.history_message(["Alien (1979)", "  "])
    with pytest.raises(ValueError, match="titles must hold at least one str"):
        llmrank.history_message([])
    with pytest.raises(ValueError, match=r"candidates must hold non-empty titles.*\[0, 2\]"):
        llmrank.listwise_message(["Alien (1979)"], ["", "Heat (1995)", "\t"])
    with pytest.raises(ValueError, match=r"reasons must hold non-empty titles.*\[0\]"):
        llmrank.explanation_message([""], "Heat (1995)")


def test_faithfulness_refuses_blank_catalogue_titles():
    # a blank catalogue title is an empty pattern, which matches between any two non-word characters
    with pytest.raises(ValueError, match=r"catalogue_titles must hold non-empty titles.*\[1\]"):
        llmrank.named_titles("Alien , and Heat.", ["Alien (1979)", ""])
    with pytest.raises(ValueError, match=r"catalogue_titles must hold .*missing.*\[0\]"):
        llmrank.check_explanation("You may like Heat.", ["Alien (1979)"], "Heat (1995)", [np.nan, "Heat (1995)"])


def test_order_by_names_non_numeric_scores():
    with pytest.raises(TypeError, match="scores must be a numeric"):
        llmrank.order_by([[1, 2]], [["a", "b"]])


def test_the_lm_answers_the_candidate_scorer_interface(tiny):
    from recsuite.models.base import CandidateScorer

    scorer = llmrank.LMScorer(tiny, device="cpu")
    titles = ["Alien (1979)", "Fargo (1996)", "Heat (1995)", "Babe (1995)"]
    histories = [np.array([0, 1]), np.array([1]), np.array([2, 3])]
    cands = np.array([[2, 3], [0, 3]])
    ranker = llmrank.LMRanker(scorer, histories, titles)
    assert isinstance(ranker, CandidateScorer)
    got = ranker.score_candidates([2, 0], cands)
    want = llmrank.zero_shot(scorer, [histories[2], histories[0]], cands, titles, m=2, progress=False).scores("mean")
    np.testing.assert_allclose(got, want)
    total = llmrank.LMRanker(scorer, histories, titles, normalise="sum").score_candidates([2, 0], cands)
    assert not np.allclose(total, got)
    with pytest.raises(ValueError, match="user_idx"):
        ranker.score_candidates([3], cands[:1])
    with pytest.raises(ValueError, match="normalise"):
        llmrank.LMRanker(scorer, histories, titles, normalise="max")
