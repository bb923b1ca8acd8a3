"""recsuite.models.encoders: model identity, the process cache, device, the one precision rule, pooling, encode loop."""

import numpy as np
import pytest
import torch
from test_semantic import TEXTS, save_tiny_bert

from recsuite.core.device import get_device
from recsuite.models import encoders as E


@pytest.fixture()
def tiny(tmp_path):
    return save_tiny_bert(tmp_path / "tiny-bert", seed=0)


def test_precision_rule_and_autocast_on_cpu():
    assert E.precision("cpu") == "fp32"
    assert E.precision(torch.device("cpu")) == "fp32"
    with E.autocast("cpu"):
        assert not torch.is_autocast_enabled()


def test_precision_is_never_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert E.precision(torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert E.precision(torch.device("cuda")) == "bf16"


def test_cached_model_loads_once_and_clears():
    calls = []
    key = ("test", "x")
    first = E.cached_model(key, lambda: calls.append(1) or object())
    assert E.cached_model(key, lambda: calls.append(1) or object()) is first and len(calls) == 1
    E.clear_model_cache()
    assert E.cached_model(key, lambda: calls.append(1) or object()) is not first and len(calls) == 2
    E.clear_model_cache()


def test_load_encoder_cached_and_encode_batches_unit_rows(tiny):
    assert E.load_encoder(tiny, device="cpu")[1] is E.load_encoder(tiny, device="cpu")[1]
    vec = E.encode_batches(TEXTS, tiny, batch_size=2, device="cpu", progress=False)
    assert vec.shape == (len(TEXTS), 16) and vec.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert E.max_positions(tiny) == 64
    s, local, fp = E.model_identity(tiny)
    assert s == local and len(fp) == 16


def test_mean_pool_by_hand():
    h = np.array([[[1.0, 2.0], [3.0, 4.0]]], dtype=np.float32)
    np.testing.assert_allclose(E.mean_pool(h, np.array([[1, 0]])), [[1.0, 2.0]])


def test_quiet_transformers_restores_verbosity():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    with E.quiet_transformers():
        assert hf_logging.get_verbosity() == hf_logging.ERROR
    assert hf_logging.get_verbosity() == before


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda t: E.model_identity(42), TypeError),
        (lambda t: E.model_identity("  "), ValueError),
        (lambda t: E.model_identity("./no-such-dir"), ValueError),
        (lambda t: E.load_encoder(None), TypeError),
        (lambda t: E.load_encoder(t, device=0), TypeError),
        (lambda t: get_device("tpu"), ValueError),
        (lambda t: get_device(1), TypeError),
        (lambda t: E.precision(None), TypeError),
        (lambda t: E.autocast("gpu"), ValueError),
        (lambda t: E.cached_model(["unhashable"], lambda: 1), TypeError),
        (lambda t: E.cached_model(("k",), "not callable"), TypeError),
        (lambda t: E.mean_pool([[1.0]], [[1]]), TypeError),
        (lambda t: E.mean_pool(np.zeros((2, 3)), np.ones((2, 3))), ValueError),
        (lambda t: E.mean_pool(np.zeros((2, 3, 4)), np.ones((2, 4))), ValueError),
        (lambda t: E.mean_pool(np.zeros((1, 2, 2), dtype=object), np.ones((1, 2))), TypeError),
        (lambda t: E.max_positions(3.5), TypeError),
        (lambda t: E.encode_batches("one", t), TypeError),
        (lambda t: E.encode_batches([], t), ValueError),
        (lambda t: E.encode_batches(["a"], t, batch_size=0), ValueError),
        (lambda t: E.encode_batches(["a"], t, max_length=1024, device="cpu"), ValueError),
        (lambda t: E.encode_batches(["a"], t, normalize="yes"), TypeError),
        (lambda t: E.encode_batches(["a"], t, progress=None), TypeError),
    ],
)
def test_bad_input_table(tiny, call, error):
    with pytest.raises(error):
        call(tiny)
