"""Every unit test gets its own empty RECSUITE_HOME: caches, choices and results never touch the checkout.
Also: small builders shared by several test files (a CSR from item lists, a tiny random causal LM), and the
order in which ``make test`` hands files to its two pytest-xdist workers (longest lesson first)."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsuite.course.runner import notebook_seconds


def pytest_collection_modifyitems(config, items):
    """Lessons first, longest first; the unit tests after them. With ``-n 2 --dist loadscope`` each file runs
    whole on one worker (nbval needs its cells in order, in one kernel), so starting the long lessons first
    keeps one worker from being left with a 5-minute lesson at the end. The order within a file is kept."""
    seconds = {}

    def key(item):
        path = Path(str(item.path))
        if path.suffix != ".ipynb":
            return (1, 0.0)
        if path not in seconds:
            seconds[path] = notebook_seconds(path)
        return (0, -seconds[path])

    items.sort(key=key)  # stable: cells and tests keep their order inside each file


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("recsuite-home")
    monkeypatch.setenv("RECSUITE_HOME", str(home))
    monkeypatch.delenv("RECSUITE_RESULTS", raising=False)
    monkeypatch.delenv("RECSUITE_EXPECT", raising=False)
    monkeypatch.delenv("RECSUITE_EXPECT_LOG", raising=False)
    return home


@pytest.fixture
def csr():
    """Build a 0/1 CSR matrix from per-user item lists: ``csr([[1, 3], [], [0]], n_items)``."""

    def build(rows, n_items):
        pairs = [(u, i) for u, items in enumerate(rows) for i in items]
        r, c = zip(*pairs) if pairs else ((), ())
        return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))

    return build


def save_tiny_causal_lm(path, seed=0, chat_template=None, arch="gpt2"):
    """A randomly initialised causal LM with a character-level tokenizer, built offline: ``arch="gpt2"`` (1
    layer, n_embd 32, learned positions) or ``"llama"`` (2 layers, hidden 32, rotary positions, grouped KV)."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, "[BOS]": 3, **{c: i + 4 for i, c in enumerate(chars)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]",
                                  bos_token="[BOS]")
    if chat_template:
        tok.chat_template = chat_template
    if arch == "gpt2":
        net = GPT2LMHeadModel, GPT2Config(vocab_size=len(vocab), n_positions=512, n_embd=32, n_layer=1, n_head=2,
                                          bos_token_id=2, eos_token_id=2, pad_token_id=0)
    elif arch == "llama":
        net = LlamaForCausalLM, LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                            max_position_embeddings=512, bos_token_id=3, eos_token_id=2,
                                            pad_token_id=0)
    else:
        raise ValueError(f"arch must be 'gpt2' or 'llama', got {arch!r}")
    torch.manual_seed(seed)
    net[0](net[1]).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_lm_builder():
    """``save_tiny_causal_lm``: build a tiny random causal LM in a folder (``path, seed, chat_template, arch``)."""
    return save_tiny_causal_lm
