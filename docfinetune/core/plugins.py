"""Pluggable parts, each declared once: name -> where it lives, its config section, what it
needs installed. The names feed the config's choices and the CLI's flags; the stage that uses a
part resolves it (`load`), so an optional library is imported only when its part is chosen.

Implementations are named as "module:attribute" strings, not imported here: the core imports no
stage (tests/test_layout.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from docfinetune.core.errors import DocfinetuneError


@dataclass(frozen=True)
class Plugin:
    name: str
    target: str  # "module:attribute" of the class that implements it
    summary: str  # one line for --help
    requires: tuple[str, ...] = ()  # importable modules it needs
    install: str = ""  # the pip line that provides them
    config_section: str = ""  # its settings: a field of the owning config section, "" for none

    def load(self):
        """The implementing class; a missing optional library becomes one line with its fix."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except ImportError:
                raise DocfinetuneError(f"{self.name} needs {module}: {self.install}") from None
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _registry(*plugins: Plugin) -> dict[str, Plugin]:
    return {p.name: p for p in plugins}


EXTRACTORS = _registry(
    Plugin("pypdfium2", "docfinetune.ingest.extract:Pypdfium2Extractor",
           "PDFium: ~50x the pages per second of pypdf at the same fidelity (the default by measurement)",
           ("pypdfium2",), "pip install pypdfium2"),
    Plugin("pypdf", "docfinetune.ingest.extract:PypdfExtractor", "pure Python", ("pypdf",), "pip install pypdf"),
)

# Q&A generators, in the order their rows are written. Each takes its config section and
# returns QAPair rows from (documents, chunks).
GENERATORS = _registry(
    Plugin("rules", "docfinetune.build.generators.rules:RulesQAGenerator",
           "contract fields found by patterns (parties, dates, term, renewal, law, fees...); offline, seconds",
           config_section="rules"),
    Plugin("coverage", "docfinetune.build.generators.coverage:CoverageQAGenerator",
           "a short-answer fact from every clause (amounts, periods, places, sections...); offline, seconds",
           config_section="coverage"),
    Plugin("llm", "docfinetune.build.generators.llm:LLMQAGenerator",
           "an instruct model (local or an OpenAI-compatible endpoint) writes Q&A per chunk",
           config_section="llm"),
)
