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

from docfinetune.errors import ConfigError

PIPELINES_DIR = Path(__file__).resolve().parent.parent / "pipelines"
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


@dataclass(frozen=True)
class PipelineConfig:
    """A complete, named recipe. Sections are added by each pipeline stage."""

    name: str = option("default", "The recipe's name.")
    description: str = option("", "One line on what this recipe is for.")
    ingest: IngestConfig = field(default_factory=IngestConfig)

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
    for section, values in (overrides or {}).items():
        merged = dict(raw.get(section) or {})
        merged.update({k: v for k, v in values.items() if v is not None})
        raw[section] = merged
    problems: list[str] = []
    config = _build(PipelineConfig, raw, "", problems)
    if problems:
        raise ConfigError(*(f"{path}: {p}" for p in problems))
    return config
