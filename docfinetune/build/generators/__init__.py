"""Q&A generators: chunks of some documents in, QAPair rows out. Which ones exist is declared
once in core/plugins.py (name, implementing class, config section); `make_generator` builds one
by name. A generator class takes its config section; one that keeps a cache or reports
progress (`needs_workspace = True`) also gets its cache folder, the download permission and a
progress callback.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

from docfinetune.core.config import PipelineConfig
from docfinetune.core.plugins import GENERATORS
from docfinetune.core.records import Chunk, Document, QAPair
from docfinetune.core.workspace import Workspace


class QAGenerator(Protocol):
    """A pluggable Q&A generator: chunks of some documents in, Q&A pairs out."""

    name: str

    def generate(self, documents: list[Document], chunks: list[Chunk]) -> Iterable[QAPair]: ...


def make_generator(name: str, config: PipelineConfig, workspace: Workspace,
                   on_progress: Callable[[str, int, int], None] | None = None) -> QAGenerator:
    plugin = GENERATORS[name]
    generator_class = plugin.load()
    settings = getattr(config.build, plugin.config_section)
    if not getattr(generator_class, "needs_workspace", False):
        return generator_class(settings)
    report = (lambda done, total: on_progress(f"writing Q&A ({name})", done, total)) if on_progress else None
    return generator_class(settings, cache_dir=workspace.cache_dir(f"qa_{name}"),
                           allow_download=config.model.allow_download, on_progress=report)
