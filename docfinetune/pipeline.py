"""The one place stages are composed (besides the CLI): `train` on data that is up to date.

`build` and `train` never import each other; a caller that wants "build when stale, then
train" — the CLI's `train`, the knowledge benchmark — calls `build_then_train`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from docfinetune.build import build, datasets_stale
from docfinetune.core import distributed
from docfinetune.core.config import PipelineConfig
from docfinetune.core.models import resolve_device
from docfinetune.core.workspace import Workspace
from docfinetune.train import EventFn, resume_point, train

log = logging.getLogger(__name__)


def fresh_datasets(workspace: Workspace, config: PipelineConfig,
                   on_progress: Callable[[str, int, int], None] | None = None) -> str | None:
    """Build the datasets when they are missing or stale (with the last build's --qa-file
    files); returns why it built, or None when they were up to date."""
    qa_files = [Path(p) for p in (workspace.read_stats() or {}).get("qa_files", [])]
    reason = datasets_stale(workspace, config, qa_files)
    if reason:
        log.info("building the datasets first: %s", reason)
        build(workspace, config, qa_files, on_progress=on_progress)
    return reason


def build_then_train(workspace: Workspace, config: PipelineConfig, *, resume: bool = False,
                     run_id: str | None = None, on_event: EventFn | None = None,
                     on_progress: Callable[[str, int, int], None] | None = None) -> Path:
    """`train`, after building the datasets its config needs (a resumed run's own config). A device
    that is not there (`--pipeline embedded-gpu` on a laptop) is said before anything is built."""
    resolve_device(config.model)
    if distributed.is_main():  # under `accelerate launch` the others wait for these datasets
        data_config = resume_point(workspace, run_id)[0].config if resume else config
        fresh_datasets(workspace, data_config, on_progress)
    distributed.barrier()
    return train(workspace, config, resume=resume, run_id=run_id, on_event=on_event)
