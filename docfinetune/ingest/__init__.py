"""`docfinetune ingest`: documents -> clean page text -> chunks, in the workspace.

All or nothing by default: every input is extracted, cleaned and chunked into a hidden staging
folder first; only when all of them succeed are they swapped into `documents/`. If any input is
bad, every problem is reported and the workspace is left exactly as it was. With
`keep_going=True` the good inputs are committed and the bad ones reported.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from docfinetune import __version__
from docfinetune.core.config import IngestConfig
from docfinetune.core.errors import BadInputError, IngestFailed
from docfinetune.core.workspace import (
    CHUNKS_FILE,
    PAGES_FILE,
    SOURCE_FILE,
    Workspace,
    file_sha256,
    write_json,
    write_jsonl,
)
from docfinetune.ingest.chunk import chunk_document, document_title, page_offsets
from docfinetune.ingest.clean import clean_pages
from docfinetune.ingest.extract import PDF_SUFFIXES, collect_inputs, die_with_parent, extract_pdf, read_text_pages

# Bump when cleaning or chunking changes what the same settings produce.
INGEST_FORMAT = 1
ProgressFn = Callable[[Path, int, int], None]
_MAX_ID_BYTES = 200  # in UTF-8: room for ".staging-"/".retired-" and a "-N" suffix in one folder name


@dataclass
class IngestResult:
    path: Path
    doc_id: str
    status: str  # new | replaced | unchanged | failed
    pages: int = 0
    chunks: int = 0
    chars: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str = ""


def doc_id_for(path: Path) -> str:
    """The id a file's document gets unless another file took it: its name (NFKC, lowercased)
    with letters and digits of any script kept and every run of anything else made one '-'
    ("Договор поставки №5.pdf" -> "договор-поставки-5"). `ingest` keeps one id per file name:
    re-ingesting a changed file with the same name replaces the old version, and a different
    file whose name makes the same slug gets "<slug>-2", "<slug>-3", ..."""
    stem = unicodedata.normalize("NFKC", path.stem.replace("\u2116", " ")).lower()  # № is a sign, not "No"
    stem = unicodedata.normalize("NFKC", stem)  # lowercasing can undo NFKC ("İ")
    kept = "".join(c if unicodedata.category(c)[0] in "LNM" else "-" for c in stem)
    slug = re.sub(r"-+", "-", kept).strip("-")[:80].strip("-")
    while len(slug.encode("utf-8")) > _MAX_ID_BYTES:  # a folder name: 255 bytes with prefix and suffix
        slug = slug[:-1].rstrip("-")
    return slug or "document"


def _assign_ids(files: list[Path], workspace: Workspace) -> dict[str, Path]:
    """{doc id: file}: a file named like an ingested document takes that document's id (a
    re-ingest replaces it); any other file takes its slug, or the first free "<slug>-N" when an
    ingested document of another file, or another file of this call, holds the slug."""
    by_name: dict[str, str] = {}
    for doc_id in workspace.doc_ids():
        name = (workspace.read_source(doc_id) or {}).get("file_name")
        if name:
            by_name.setdefault(name, doc_id)
    taken = set(workspace.doc_ids())
    if workspace.documents_dir.is_dir():  # a folder without source.json is not free either
        taken |= {p.name for p in workspace.documents_dir.iterdir() if not p.name.startswith(".")}
    by_id: dict[str, Path] = {}
    for path in files:
        doc_id = by_name.get(path.name)
        if doc_id is None or doc_id in by_id:
            base = doc_id_for(path)
            doc_id, n = base, 2
            while doc_id in taken or doc_id in by_id:
                doc_id, n = f"{base}-{n}", n + 1
        by_id[doc_id] = path
    return by_id


def settings_fingerprint(config: IngestConfig) -> dict:
    """What, besides the file's bytes, decides the output: a change means re-ingest."""
    return {
        "format": INGEST_FORMAT,
        "extractor": config.extractor,
        "chunk_chars": config.chunk_chars,
        "chunk_overlap_chars": config.chunk_overlap_chars,
        "repeat_min_share": config.repeat_min_share,
    }


class _Pool:
    """Worker processes for long PDFs, started on first need and shared by every file."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.executor: ProcessPoolExecutor | None = None

    def get(self) -> ProcessPoolExecutor | None:
        if self.workers <= 1:
            return None
        if self.executor is None:
            # forkserver: children start clean, so a progress-bar thread here cannot deadlock them.
            context = multiprocessing.get_context("forkserver")
            self.executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=die_with_parent,
                                                initargs=(os.getpid(),))
        return self.executor

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)


def _raw_pages(path: Path, config: IngestConfig, password: str | None, pool: _Pool,
               on_progress: ProgressFn | None) -> list[str]:
    report = (lambda done, total: on_progress(path, done, total)) if on_progress else None
    if path.suffix.lower() in PDF_SUFFIXES:
        return extract_pdf(path, config.extractor, password, get_pool=pool.get,
                           parallel_min_pages=config.parallel_min_pages,
                           workers=config.resolved_workers(), on_pages=report)
    pages = read_text_pages(path)
    if report:
        report(len(pages), len(pages))
    return pages


def _stage_document(path: Path, doc_id: str, sha256: str, workspace: Workspace,
                    config: IngestConfig, password: str | None, pool: _Pool,
                    on_progress: ProgressFn | None) -> tuple[Path, IngestResult]:
    """Extract, clean and chunk one file into a staging folder; raise BadInputError if unusable."""
    started = time.perf_counter()
    raw = _raw_pages(path, config, password, pool, on_progress)
    if sum(len("".join(p.split())) for p in raw) < config.min_text_chars:
        if path.suffix.lower() in PDF_SUFFIXES:
            raise BadInputError(path, f"no extractable text in {len(raw)} page(s): it looks "
                                "scanned (images only) and OCR is not done; run OCR first "
                                "(e.g. ocrmypdf) and ingest the result")
        raise BadInputError(path, "no text: the file holds only whitespace")
    cleaned = clean_pages(raw, config.repeat_min_share)
    pages = cleaned.pages
    chunks = chunk_document(doc_id, pages, config.chunk_chars, config.chunk_overlap_chars)
    empty = [i + 1 for i, p in enumerate(pages) if not p.strip()]
    warnings = []
    if empty and path.suffix.lower() in PDF_SUFFIXES:
        warnings.append(f"{len(empty)} of {len(pages)} pages have no text (scanned? OCR is not "
                        f"done): {', '.join(map(str, empty[:10]))}{' ...' if len(empty) > 10 else ''}")
    chars = sum(len(p) for p in pages)
    seconds = time.perf_counter() - started
    staged = workspace.staging_dir(doc_id)
    try:
        write_jsonl(staged / PAGES_FILE,
                    ({"page": i + 1, "char_start": o, "text": p}
                     for i, (o, p) in enumerate(zip(page_offsets(pages), pages))))
        write_jsonl(staged / CHUNKS_FILE, chunks)
        # source.json last: its presence marks the folder complete.
        write_json(staged / SOURCE_FILE, {
            "doc_id": doc_id,
            "title": document_title(pages, fallback=path.stem),
            "file_name": path.name,
            "source_path": str(path),
            "sha256": sha256,
            "size_bytes": path.stat().st_size,
            "pages": len(pages),
            "empty_pages": empty,
            # What cleanup removed as running headers/footers, so a user can check it.
            "dropped_lines": len(cleaned.dropped_lines),
            "dropped_examples": sorted(set(cleaned.dropped_lines))[:10],
            "chunks": len(chunks),
            "chars": chars,
            "extractor": config.extractor if path.suffix.lower() in PDF_SUFFIXES else "text",
            "settings": settings_fingerprint(config),
            "seconds": round(seconds, 3),
            "ingested_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "docfinetune_version": __version__,
        })
    except BaseException:
        workspace.discard(staged)
        raise
    return staged, IngestResult(path, doc_id, "new", len(pages), len(chunks), chars,
                                seconds, warnings)


def ingest(
    paths: Sequence[Path | str],
    workspace: Workspace,
    config: IngestConfig,
    password: str | None = None,
    keep_going: bool = False,
    on_progress: ProgressFn | None = None,
) -> list[IngestResult]:
    """Ingest files and directories into `workspace`. Raises IngestFailed (nothing written)
    when any input is bad, unless `keep_going`."""
    files, failures = collect_inputs([Path(p) for p in paths])
    # A document is known by its file name, so two files of one name cannot both be kept.
    by_name: dict[str, Path] = {}
    unique: list[Path] = []
    for path in files:
        other = by_name.setdefault(path.name, path)
        if other != path:
            failures.append(BadInputError(path, f"same file name, so the same document id "
                                          f"'{doc_id_for(path)}', as {other}; rename one of them"))
        else:
            unique.append(path)
    if failures and not keep_going:
        raise IngestFailed(failures)
    # Folders this call creates are removed again if it fails: the workspace stays as it was.
    created = [p for p in (workspace.documents_dir, workspace.root) if not p.exists()]
    workspace.check_writable()
    try:
        # Under the lock: recovery cannot delete another live ingest's staging folder, and two
        # ingests never interleave their swaps.
        with workspace.lock("ingest"):
            return _ingest_locked(unique, failures, workspace, config, password, keep_going, on_progress)
    except BaseException:
        for folder in created:
            if folder == workspace.root:
                workspace.remove_if_empty()
            elif folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _ingest_locked(files: list[Path], failures: list[BadInputError], workspace: Workspace,
                   config: IngestConfig, password: str | None, keep_going: bool,
                   on_progress: ProgressFn | None) -> list[IngestResult]:
    workspace.recover("ingest")
    by_id = _assign_ids(files, workspace)
    fingerprint = settings_fingerprint(config)
    results: list[IngestResult] = [
        IngestResult(Path(f.path), "", "failed", error=f.problem) for f in failures
    ]
    staged: list[tuple[Path, IngestResult]] = []
    pool = _Pool(config.resolved_workers())
    try:
        for doc_id, path in by_id.items():
            sha256 = file_sha256(path) if path.stat().st_size else ""
            previous = workspace.read_source(doc_id)
            if previous and previous.get("sha256") == sha256 and previous.get("settings") == fingerprint:
                results.append(IngestResult(path, doc_id, "unchanged", previous["pages"],
                                            previous["chunks"], previous["chars"]))
                continue
            try:
                folder, result = _stage_document(path, doc_id, sha256, workspace, config,
                                                 password, pool, on_progress)
            except BadInputError as err:
                failures.append(err)
                results.append(IngestResult(path, doc_id, "failed", error=err.problem))
                continue
            result.status = "replaced" if previous else "new"
            staged.append((folder, result))
            results.append(result)
        if failures and not keep_going:
            raise IngestFailed(failures)
    except BaseException:
        for folder, _ in staged:
            workspace.discard(folder)
        raise
    finally:
        pool.close()
    try:
        workspace.commit_documents([(folder, result.doc_id) for folder, result in staged])  # all or none
    except BaseException:
        for folder, _ in staged:
            workspace.discard(folder)
        raise
    return results


def result_rows(results: list[IngestResult]) -> list[dict]:
    return [{**asdict(r), "path": str(r.path)} for r in results]
