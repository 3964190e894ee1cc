"""The workspace directory: every stage's files, their names and readers, in one place, and
how they are written safely.

    documents/<doc-id>/source.json    ingest: file name, sha256, pages, extractor, settings, time
    documents/<doc-id>/pages.jsonl    ingest: page number, cleaned text
    documents/<doc-id>/chunks.jsonl   ingest: chunk id, doc id, page span, char span, heading, text
    datasets/cpt.jsonl                build: the reading text (one record per chunk and restatement)
    datasets/qa_{train,val,test}.jsonl  build: question, answer, fact id, source chunk ids, doc id,
                                      generator, field
    datasets/stats.json               build: counts, tokens, kept/dropped, the inputs' fingerprint
                                      (written last: marks the folder complete)
    runs/latest                       train: the id of the last finished run
    runs/<run-id>/config.yaml         train: the resolved pipeline config, written first
    runs/<run-id>/metrics.jsonl       train: one line per evaluation
    runs/<run-id>/selection.json      train: every checkpoint's figures and the selected one
    runs/<run-id>/curves.png          train: losses and accuracies against step
    runs/<run-id>/checkpoints/checkpoint-<step>/  a peft adapter with Trainer's state, its own
                                      metrics.json (written last: the checkpoint is complete) and
                                      config.yaml (core/runs.py finds, resumes and loads them)
    reports/<time>.{json,md,png}      eval: one report per call
    cache/<name>/                     build: replies of the llm generators, by chunk and prompt

Every file is written to a temporary name and renamed into place, and a document's folder is
swapped in whole, so a crash never leaves a half-written file that a later stage trusts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from docfinetune.core.errors import WorkspaceError
from docfinetune.core.records import Chunk, Document

DOCUMENTS_DIR = "documents"
SOURCE_FILE = "source.json"
PAGES_FILE = "pages.jsonl"
CHUNKS_FILE = "chunks.jsonl"
DATASETS_DIR = "datasets"
CPT_FILE = "cpt.jsonl"
QA_SPLITS = ("train", "val", "test")
STATS_FILE = "stats.json"
RUNS_DIR = "runs"
LATEST = "latest"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SELECTION_FILE = "selection.json"
CURVES_FILE = "curves.png"
CHECKPOINT_METRICS_FILE = "metrics.json"
ADAPTER_FILE = "adapter_config.json"  # peft's: a folder holding it is an adapter
REPORTS_DIR = "reports"
CACHE_DIR = "cache"
STAGING_PREFIX = ".staging-"
RETIRED_PREFIX = ".retired-"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl_lines(path: Path) -> tuple[list[tuple[int, object]], list[str]]:
    """A user's JSONL file: (line number, parsed value) for each non-blank line, and one
    problem ("line N: not JSON (...)") per line that does not parse. Raises BadInputError when
    the file is missing or not UTF-8."""
    from docfinetune.core.errors import BadInputError

    if not path.is_file():
        raise BadInputError(path, "no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInputError(path, "not UTF-8 text") from None
    rows, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            problems.append(f"line {number}: not JSON ({err.msg})")
    return rows, problems


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def swap_in(staged: Path, target: Path) -> None:
    """Put a fully written staging folder in place of `target`.

    The old version is renamed aside first and deleted only after the new one is in place;
    `Workspace.recover()` finishes or undoes a swap that a crash interrupted.
    """
    retired = None
    if target.exists():
        retired = target.parent / f"{RETIRED_PREFIX}{target.name}"
        if retired.exists():
            shutil.rmtree(retired)
        os.replace(target, retired)
    os.replace(staged, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _recover(parent: Path) -> None:
    for p in parent.iterdir():
        if p.name.startswith(STAGING_PREFIX):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(RETIRED_PREFIX):
            target = parent / p.name[len(RETIRED_PREFIX):]
            if target.exists() and any(target.iterdir()):
                shutil.rmtree(p, ignore_errors=True)
            else:
                if target.exists():
                    shutil.rmtree(target)
                os.replace(p, target)


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def documents_dir(self) -> Path:
        return self.root / DOCUMENTS_DIR

    def document_dir(self, doc_id: str) -> Path:
        return self.documents_dir / doc_id

    def doc_ids(self) -> list[str]:
        """Ingested documents: folders with a source.json (written last, so it marks complete)."""
        if not self.documents_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.documents_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / SOURCE_FILE).is_file()
        )

    def read_source(self, doc_id: str) -> dict | None:
        path = self.document_dir(doc_id) / SOURCE_FILE
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def chunks_file(self, doc_id: str) -> Path:
        return self.document_dir(doc_id) / CHUNKS_FILE

    def read_corpus(self) -> tuple[list[Document], list[Chunk]]:
        """Every ingested document and its chunks, in document-id then chunk order."""
        doc_ids = self.doc_ids()
        if not doc_ids:
            raise WorkspaceError(f"{self.root}: no documents ingested yet; run `docfinetune ingest FILE...`")
        documents, chunks = [], []
        for doc_id in doc_ids:
            source = self.read_source(doc_id) or {}
            documents.append(Document(doc_id, source.get("title") or doc_id, source.get("file_name", "")))
            chunks.extend(Chunk.from_dict(row) for row in read_jsonl(self.chunks_file(doc_id)))
        return documents, chunks

    @property
    def datasets_dir(self) -> Path:
        return self.root / DATASETS_DIR

    def dataset_file(self, name: str) -> Path:
        """datasets/<name>.jsonl: name is cpt or qa_train, qa_val, qa_test."""
        return self.datasets_dir / f"{name}.jsonl"

    @property
    def stats_file(self) -> Path:
        return self.datasets_dir / STATS_FILE

    def read_stats(self) -> dict | None:
        """datasets/stats.json, or None before the first build."""
        path = self.stats_file
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def read_dataset(self, name: str) -> list[dict]:
        """The rows of datasets/<name>.jsonl; [] when the file is absent."""
        path = self.dataset_file(name)
        return list(read_jsonl(path)) if path.is_file() else []

    @property
    def reports_dir(self) -> Path:
        return self.root / REPORTS_DIR

    def cache_dir(self, name: str) -> Path:
        return self.root / CACHE_DIR / name

    def staging_dir(self, name: str, parent: Path | None = None) -> Path:
        """A fresh hidden folder beside its final place, for building that folder's files."""
        parent = parent or self.documents_dir
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=parent, prefix=f"{STAGING_PREFIX}{name}-"))

    def commit_document(self, staged: Path, doc_id: str) -> None:
        swap_in(staged, self.document_dir(doc_id))

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def recover(self) -> None:
        """Clean up after a crash: drop staging folders, restore a retired version that lost
        its replacement, and drop one whose replacement is complete."""
        for parent in (self.documents_dir, self.root):
            if parent.is_dir():
                _recover(parent)

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WorkspaceError(f"{self.root}: cannot create the workspace ({err.strerror})") from None
        if not os.access(self.root, os.W_OK):
            raise WorkspaceError(f"{self.root}: the workspace is not writable")

    def summary(self) -> dict[str, Any]:
        """Counts for `docfinetune status`."""
        docs = []
        for doc_id in self.doc_ids():
            source = self.read_source(doc_id) or {}
            docs.append(
                {
                    "doc_id": doc_id,
                    "file_name": source.get("file_name", ""),
                    "title": source.get("title", ""),
                    "pages": source.get("pages", 0),
                    "chunks": source.get("chunks", 0),
                    "chars": source.get("chars", 0),
                    "extractor": source.get("extractor", ""),
                    "ingested_at": source.get("ingested_at", ""),
                }
            )
        datasets = self.read_stats()
        return {
            "workspace": str(self.root),
            "documents": docs,
            "totals": {k: sum(d[k] for d in docs) for k in ("pages", "chunks", "chars")},
            "datasets": datasets,
        }
