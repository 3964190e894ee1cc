"""`docfinetune export`: a run's checkpoint as files that serving tools load without this project.

    merged    the adapter merged into the base model's weights in 16-bit (bf16 or fp16), sharded
              safetensors + config + generation_config + tokenizer: AutoModelForCausalLM, vLLM,
              Ollama (FROM the folder). A QLoRA run's base is loaded in 16-bit for this, never in
              4-bit: merging into 4-bit weights would round the adapter's update away. A full
              fine-tune's checkpoint is the model already; it is saved in the chosen type.
    adapter   the peft adapter (adapter_model.safetensors + adapter_config.json) for
              PeftModel.from_pretrained and vLLM's --enable-lora; not for a full fine-tune.
    gguf      refused with how to convert a merged export with llama.cpp: no maintained converter
              installs from PyPI (measured 2026-11-30; README, "After training").

Every export also holds README.md (the model card: card.py), the training prompt as the
tokenizer's chat template and as an Ollama Modelfile (serving.py), and the run's recipe
(docfinetune-config.yaml) with a machine-readable summary (docfinetune-export.json).

Everything that can be wrong (no run, an unknown checkpoint, a format the checkpoint cannot
give, an output that exists or cannot be written) is checked before a model loads. The export is
built in a hidden folder beside the output and renamed into place, so an error or a crash never
leaves a half-written export where a serving tool would read it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from docfinetune.core.config import ExportConfig, ModelConfig
from docfinetune.core.errors import ConfigError, DocfinetuneError, WorkspaceError
from docfinetune.core.runs import (
    ADAPTER_FILE,
    CONFIG_FILE,
    Checkpoint,
    Run,
    find_run,
    is_full_checkpoint,
    resolve_checkpoint,
    runs_dir,
)
from docfinetune.core.workspace import Workspace
from docfinetune.export import card, serving

EXPORTS_DIR = "exports"  # <workspace>/exports/<run-id>-step<N>-<format>/ unless --output says otherwise
ADAPTER_WEIGHTS = "adapter_model.safetensors"
RECIPE_FILE = "docfinetune-config.yaml"
SUMMARY_FILE = "docfinetune-export.json"
ProgressFn = Callable[[str, int, int], None]


def gguf_refusal(merged_hint: str, dtype: str) -> str:
    """The one line `--format gguf` answers with (what was measured is in the README)."""
    outtype = "bf16" if dtype == "bf16" else "f16"
    return ("--format gguf: no maintained Hugging Face-to-GGUF converter installs from PyPI (the gguf package "
            "only reads and writes the format); export with --format merged, then convert that folder with "
            f"llama.cpp: python llama.cpp/convert_hf_to_gguf.py {merged_hint} --outtype {outtype}")


def default_output(workspace: Workspace, run: Run, chosen: Checkpoint, fmt: str) -> Path:
    step = f"step{chosen.step}" if chosen.step is not None else chosen.path.name
    return workspace.root / EXPORTS_DIR / f"{run.id}-{step}-{fmt}"


def export_run(workspace: Workspace, config: ExportConfig | None = None, *, run_id: str | None = None,
               checkpoint: int | str | Path | None = None, out: Path | None = None,
               on_progress: ProgressFn | None = None) -> Path:
    """Export checkpoint `checkpoint` (default: the selected one) of run `run_id` (default: the
    latest) in `config.format` to `out` (default: exports/<run>-step<N>-<format>/ in the
    workspace); returns the folder."""
    settings = config or ExportConfig()
    progress = on_progress or (lambda stage, done, total: None)
    run = find_run(workspace, run_id)
    if run is None:
        raise WorkspaceError(f"{runs_dir(workspace)}: no run trained yet; run `docfinetune train` first")
    chosen = resolve_checkpoint(run, checkpoint)
    full = is_full_checkpoint(chosen.path)
    target = Path(out).expanduser() if out is not None else default_output(workspace, run, chosen, settings.format)
    if settings.format == "gguf":
        merged = default_output(workspace, run, chosen, "merged") if out is None else target.with_name(
            target.name + "-merged")
        raise DocfinetuneError(gguf_refusal(str(merged), settings.dtype))
    if full and settings.format == "adapter":
        raise ConfigError(f"run {run.id} was fully fine-tuned: use --format merged")
    if not full and not (chosen.path / ADAPTER_WEIGHTS).is_file():
        raise WorkspaceError(f"{chosen.path}: no {ADAPTER_WEIGHTS} beside {ADAPTER_FILE}; export needs the adapter "
                             "as safetensors")
    staging, made = _stage_beside(target)
    try:
        started = time.perf_counter()
        if settings.format == "merged":
            _write_merged(staging, run, chosen, settings, progress)
        else:
            _write_adapter(staging, run, chosen, progress)
        _write_serving_files(staging, workspace, run, chosen, full, settings, target, started)
        os.rename(staging, target)
    except OSError as err:
        _discard(staging, made)
        raise WorkspaceError(f"{target}: could not write the export ({err.strerror or err}); nothing was "
                             "written") from None
    except BaseException:
        _discard(staging, made)
        raise
    return target


# --------------------------------------------------------------------------- the output folder


def _stage_beside(target: Path) -> tuple[Path, list[Path]]:
    """A fresh hidden folder in the output's parent (made if needed), for building the export
    in; and the parent folders this made, to remove again if the export fails."""
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise WorkspaceError(f"{target}: exists; remove it or give another --output")
    missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
    existing = missing[-1].parent if missing else target.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise WorkspaceError(f"{target}: cannot be written ({existing} is not a writable folder); give another "
                             "--output")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    except OSError as err:
        _discard(None, missing)
        raise WorkspaceError(f"{target}: cannot be written ({err.strerror or err}); give another --output") from None
    return staging, missing


def _discard(staging: Path | None, made: list[Path]) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for folder in made:  # innermost first
        try:
            folder.rmdir()
        except OSError:
            break


# --------------------------------------------------------------------------- the weights


def base_for_merge(model: ModelConfig, dtype: str) -> ModelConfig:
    """How the run's base model is loaded for a merge: on the CPU (a 7B model in 16-bit is 14.5
    GB, more than an A10G has beside anything else), never quantized — a QLoRA adapter is merged
    into the 16-bit weights, not the 4-bit ones — in bf16, or in fp32 for an fp16 export (the
    loader has no fp16; fp32 -> fp16 rounds once, bf16 -> fp16 would round twice)."""
    return dataclasses.replace(model, device="cpu", quantization="none",
                               precision="bf16" if dtype == "bf16" else "fp32")


def merged_model(run: Run, chosen: Checkpoint, dtype: str, progress: ProgressFn):
    """The model to save: the full fine-tune's checkpoint, or the base with the adapter merged in,
    in `dtype` on the CPU."""
    import torch

    from docfinetune.core.runs import load_weights

    progress("loading", 0, 1)
    model = load_weights(dataclasses.replace(run.config, model=base_for_merge(run.config.model, dtype)), chosen.path)
    progress("loading", 1, 1)
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter (a full fine-tune has none)
        layers = [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
        for done, layer in enumerate(layers):
            progress("merging", done, len(layers))
            merge_in_fp32(layer)
        progress("merging", len(layers), len(layers))
        model = model.unload()  # the adapters are in the weights now: only peft's wrappers go
    return model.to({"bf16": torch.bfloat16, "fp16": torch.float16}[dtype])


def merge_in_fp32(layer) -> None:
    """Merge one LoRA layer's update into its base weight, summed in fp32 and rounded to the weight's
    dtype once. peft's merge on a bf16 weight rounds the update to bf16 and then the sum: on the tiny
    test model that doubled the logits' error (0.016 against 0.009, tests/test_export.py). One
    layer at a time: a 7B model's largest LoRA weight is 0.23 GB in fp32, the whole model 28 GB."""
    weight = layer.base_layer.weight
    dtype = weight.dtype
    weight.data = weight.data.float()
    try:
        # safe_merge: a weight the update turns into NaN or inf stops the merge instead of being saved
        layer.merge(safe_merge=True)
    finally:  # the same Parameter: safe_merge swaps only its .data
        weight.data = weight.data.to(dtype)


def _write_merged(staging: Path, run: Run, chosen: Checkpoint, settings: ExportConfig,
                  progress: ProgressFn) -> None:
    model = merged_model(run, chosen, settings.dtype, progress)
    needed = sum(p.numel() * p.element_size() for p in model.parameters())
    free = shutil.disk_usage(staging).free
    if needed > free:
        raise WorkspaceError(f"{staging.parent}: the merged model needs about {needed / 1e9:.1f} GB, and "
                             f"{free / 1e9:.1f} GB are free; give another --output")
    model.config.use_cache = True  # training turned the KV cache off; serving wants it
    generation = model.generation_config
    generation.do_sample = False  # greedy, as every answer was measured
    generation.temperature = generation.top_p = generation.top_k = None
    generation.max_new_tokens = run.config.generation.max_new_tokens
    from docfinetune.core.models import _progress_bars

    progress("saving", 0, 1)
    with _progress_bars(False):  # transformers' own shard bar, under ours
        model.save_pretrained(staging, max_shard_size=f"{settings.max_shard_mb}MB")
    progress("saving", 1, 1)


def _write_adapter(staging: Path, run: Run, chosen: Checkpoint, progress: ProgressFn) -> None:
    progress("copying", 0, 1)
    for name in (ADAPTER_FILE, ADAPTER_WEIGHTS):
        shutil.copyfile(chosen.path / name, staging / name)
    progress("copying", 1, 1)


# --------------------------------------------------------------------------- prompt, card, recipe


def _write_serving_files(staging: Path, workspace: Workspace, run: Run, chosen: Checkpoint, full: bool,
                         settings: ExportConfig, target: Path, started: float) -> None:
    from docfinetune.core.models import load_tokenizer

    generation = run.config.generation
    tokenizer = load_tokenizer(run.config.model)
    probe = tokenizer("x")["input_ids"]
    adds_bos = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]
    template = serving.chat_template(generation, adds_bos)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(staging)
    # transformers 5 writes the template to chat_template.jinja; older readers (and some servers)
    # look for it in tokenizer_config.json, so it goes there too.
    config_path = staging / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config["chat_template"] = template
    config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    base = _base_location(run)
    if settings.format == "merged":
        (staging / "Modelfile").write_text(serving.modelfile(generation, "."), encoding="utf-8")
    else:
        (staging / "Modelfile").write_text(serving.modelfile(generation, base, adapter="."), encoding="utf-8")
    shutil.copyfile(run.path / CONFIG_FILE, staging / RECIPE_FILE)
    docs = card.documents(workspace, run)
    found = card.evaluation(workspace, run, chosen.step)
    taught = (run.selection or {}).get("taught_all")
    taught = taught if taught and chosen.path.resolve() == (run.path / taught["path"]).resolve() else None
    readme = card.render(workspace=workspace, run=run, step=chosen.step, reason=chosen.reason, taught=taught,
                         fmt=settings.format, dtype=settings.dtype, full=full, docs=docs, found=found,
                         serving=_serving_commands(run, settings, target, base))
    (staging / "README.md").write_text(readme, encoding="utf-8")
    report = (found or {}).get("report") or {}
    summary = {
        "run_id": run.id, "step": chosen.step, "checkpoint": str(chosen.path), "reason": chosen.reason,
        "format": settings.format, "dtype": settings.dtype if settings.format == "merged" else None,
        "method": "full" if full else "lora", "base_model": run.config.model.base_model,
        "trained_quantization": run.config.model.quantization, "documents": docs,
        "evaluation": None if found is None else {
            "report": found.get("report_file"),
            "systems": report.get("systems") or (found.get("systems") or {}).get("accuracy"),
            "memorization": {s: a.get("copied_share") for s, a in (report.get("memorization") or {})
                             .get("systems", {}).items()} or None,
            "extraction": {m: r.get("reproduced_share") for m, r in (report.get("extraction") or {})
                           .get("models", {}).items()} or None},
        "export_seconds": round(time.perf_counter() - started, 2),
    }
    (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _base_location(run: Run) -> str:
    """Where the run's base weights are, for a server that puts the adapter on them: the hub
    id or folder, or for a GGUF or the embedded model the safetensors it was converted to."""
    from docfinetune.core.models import resolve

    source = resolve(run.config.model)
    return str(source.cache_dir) if source.kind in ("embedded", "gguf") else source.location


def _serving_commands(run: Run, settings: ExportConfig, target: Path, base: str) -> list[str]:
    """The card's "Serving" section for this format."""
    folder = str(target)
    if settings.format == "adapter":
        rank = run.config.lora.lora_r
        return [
            f"The adapter goes on the base model `{base}` in 16-bit (a QLoRA adapter too).", "",
            "```",
            "# peft",
            f"model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), {folder!r})",
            "# vLLM: the base's own chat template is not the training prompt, so pass this one",
            f"vllm serve {base} --enable-lora --max-lora-rank {max(rank, 8)} --lora-modules docs={folder} "
            f"--chat-template {folder}/chat_template.jinja",
            "# Ollama: FROM is the base's safetensors folder (see the Modelfile)",
            f"cd {folder} && ollama create docs -f Modelfile",
            "```"]
    outtype = "bf16" if settings.dtype == "bf16" else "f16"
    return [
        "```",
        "# transformers, no project code",
        f"tokenizer = AutoTokenizer.from_pretrained({folder!r})",
        f"model = AutoModelForCausalLM.from_pretrained({folder!r})",
        'ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, '
        'return_tensors="pt", return_dict=True)',
        "# vLLM (OpenAI-compatible chat; send temperature 0 and stop [\"\\n\"], as the model was measured)",
        f"vllm serve {folder} --served-model-name docs",
        "# Ollama imports the safetensors folder (Llama, Mistral, Gemma... architectures)",
        f"cd {folder} && ollama create docs -f Modelfile",
        "# llama.cpp",
        f"python llama.cpp/convert_hf_to_gguf.py {folder} --outtype {outtype} --outfile docs.gguf",
        "llama-server -m docs.gguf --jinja",
        "```"]
