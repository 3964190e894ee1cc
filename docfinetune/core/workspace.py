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
    runs/<run-id>/systems.json        eval: the last evaluation's accuracy per system of a checkpoint
                                      (ask answers with the best of closed-book and retrieval)
    runs/<run-id>/checkpoints/checkpoint-<step>/  a peft adapter with Trainer's state, its own
                                      metrics.json (written last: the checkpoint is complete) and
                                      config.yaml (core/runs.py finds, resumes and loads them)
    runs/<run-id>/checkpoints/taught-all/  train.teach_held_out_passes: the selected adapter, then the
                                      held-out facts taught; ask and export use it, eval's held-out
                                      questions the selected one
    reports/<time>.{json,md,png}      eval: one report per call
    cache/<name>/                     build: replies of the llm generators, by chunk and prompt

Every file is written to a temporary name and renamed into place, and a document's folder is
swapped in whole, so a crash never leaves a half-written file that a later stage trusts.

    .lock, .lock.holder               writers (ingest, build) hold .lock (an OS file lock: a
                                      crashed process leaves none held); .lock.holder names the
                                      holder's pid and command for whoever waits

Writers stage and swap only while they hold the lock, and `recover()` runs only under it, so it
never deletes the staging folder of a live process. Readers call `repair()`, which finishes or
undoes a swap that a crash interrupted (taking the lock) before they list the documents.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import filelock

from docfinetune.core.errors import DiskFullError, WorkspaceError
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
SYSTEMS_FILE = "systems.json"
CHECKPOINT_METRICS_FILE = "metrics.json"
ADAPTER_FILE = "adapter_config.json"  # peft's: a folder holding it is an adapter
FULL_MODEL_FILE = "config.json"  # transformers': a checkpoint of train.method full holds the whole model
REPORTS_DIR = "reports"
CACHE_DIR = "cache"
STAGING_PREFIX = ".staging-"
RETIRED_PREFIX = ".retired-"
LOCK_FILE = ".lock"
LOCK_HOLDER_FILE = ".lock.holder"  # "<pid>\n<command line>\n" of the process holding .lock
# How long a command waits for another process to finish with the workspace before it gives up
# (exit code 2, naming the holder): DOCFINETUNE_LOCK_TIMEOUT_S seconds, default 10 minutes.
LOCK_TIMEOUT_ENV = "DOCFINETUNE_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 600.0


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def final_path(path: Path) -> Path:
    """Where a staged file will live: `documents/.staging-<id>-x1y2/pages.jsonl` is shown as
    `documents/<id>/pages.jsonl` (the staging folder is gone by the time the user reads it)."""
    parts = [p[len(STAGING_PREFIX):].rsplit("-", 1)[0] if p.startswith(STAGING_PREFIX) else p for p in path.parts]
    return Path(*parts)


@contextmanager
def disk_full_as_error(path: Path) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT while writing `path` into DiskFullError (one line naming the file)."""
    try:
        yield
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(final_path(path)) from None
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename. A
    full disk raises DiskFullError and leaves no temporary file."""
    with disk_full_as_error(path):
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


def read_json_file(path: Path) -> Any:
    """A JSON file the workspace wrote (source.json, stats.json, selection.json). A truncated or
    corrupt one raises WorkspaceError naming it, never a JSONDecodeError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise WorkspaceError(f"{path}: corrupt (not UTF-8 text); delete it and re-run the command "
                             "that writes it") from None
    except json.JSONDecodeError as err:
        raise WorkspaceError(f"{path}: corrupt or truncated (not JSON: {err.msg} at line {err.lineno}); "
                             "delete it and re-run the command that writes it") from None
    except RecursionError:
        raise WorkspaceError(f"{path}: corrupt (nested too deeply to be ours); delete it and re-run the "
                             "command that writes it") from None


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
        except RecursionError:  # json's parser recurses per level: ~1,000 levels of [ or { overflow it
            problems.append(f"line {number}: nested too deeply (a row is one object of strings)")
    return rows, problems


def read_jsonl(path: Path) -> Iterator[dict]:
    """The rows of a JSONL file the workspace wrote (chunks, datasets, metrics). A damaged one
    raises WorkspaceError naming it and the line, never a JSONDecodeError."""
    number = 0
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    yield json.loads(line)
    except UnicodeDecodeError:
        raise WorkspaceError(f"{path}: corrupt (not UTF-8 text); delete it and re-run the command that "
                             "writes it") from None
    except (json.JSONDecodeError, RecursionError):
        raise WorkspaceError(f"{path}: corrupt or truncated at line {number} (not JSON); delete it and "
                             "re-run the command that writes it") from None


def swap_in(staged: Path, target: Path) -> None:
    """Put a fully written staging folder in place of `target` (see swap_in_all)."""
    swap_in_all([(staged, target)])


def swap_in_all(pairs: list[tuple[Path, Path]]) -> None:
    """Put fully written staging folders in place of their targets, all or none.

    Each old version is renamed aside (`.retired-<name>`) and deleted only after every new one
    is in place. If a rename fails (a full disk), the swaps done are undone by renames alone (the
    new version back to its staging name, the old one back in place), so the workspace is as it
    was; `Workspace.recover()` finishes or undoes whatever a crash interrupted.
    """
    done: list[tuple[Path, Path, Path | None]] = []
    try:
        for staged, target in pairs:
            with disk_full_as_error(target):  # a rename can need a new directory block
                retired = None
                if target.exists():
                    retired = target.parent / f"{RETIRED_PREFIX}{target.name}"
                    if retired.exists():
                        shutil.rmtree(retired)
                    os.replace(target, retired)
                try:
                    os.replace(staged, target)
                except BaseException:
                    if retired is not None:
                        os.replace(retired, target)
                    raise
                done.append((staged, target, retired))
    except BaseException:
        for staged, target, retired in reversed(done):
            os.replace(target, staged)
            if retired is not None:
                os.replace(retired, target)
        raise
    for _, _, retired in done:
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


def lock_timeout_s() -> float:
    value = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        return max(0.0, float(value))
    except ValueError:
        raise WorkspaceError(f"{LOCK_TIMEOUT_ENV}={value!r}: not a number of seconds") from None


# One lock object per lock file in this process, so that a command holding the lock can call a
# function that takes it again (re-entrant); a second object would wait for the first.
_LOCKS: dict[str, filelock.BaseFileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _command_line(command: str | None) -> str:
    """This process's command line, as a user would type it ("docfinetune ingest big.pdf")."""
    argv = list(sys.argv) or [""]
    program = Path(argv[0])
    name = program.parent.name if program.name == "__main__.py" else program.name
    line = " ".join([name or "python", *argv[1:]])
    return line if not command or command in argv[1:] else f"{line} [{command}]"


def _print_waiting(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _interrupted_swaps(parent: Path) -> list[str]:
    if not parent.is_dir():
        return []
    return sorted(p.name[len(RETIRED_PREFIX):] for p in parent.iterdir() if p.name.startswith(RETIRED_PREFIX))


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
        return read_json_file(path)

    def chunks_file(self, doc_id: str) -> Path:
        return self.document_dir(doc_id) / CHUNKS_FILE

    def titles(self) -> dict[str, str]:
        """doc id -> the document's title (its id when it has none), for every ingested document."""
        return {d: (self.read_source(d) or {}).get("title") or d for d in self.doc_ids()}

    def read_corpus(self) -> tuple[list[Document], list[Chunk]]:
        """Every ingested document and its chunks, in document-id then chunk order (after
        repairing an interrupted swap: never 1 of 2 documents)."""
        self.repair()
        doc_ids = self.doc_ids()
        if not doc_ids:
            raise WorkspaceError(f"{self.root}: no documents ingested yet; run `docfinetune ingest FILE...`")
        documents, chunks = [], []
        for doc_id in doc_ids:
            source = self.read_source(doc_id) or {}
            documents.append(Document(doc_id, source.get("title") or doc_id, source.get("file_name", "")))
            chunks.extend(Chunk.from_dict(row) for row in read_jsonl(self.chunks_file(doc_id)))
        return documents, chunks

    def read_searchable(self, held_out_cards: bool = True) -> tuple[list[Document], list[Chunk]]:
        """`read_corpus` and the fact cards the last build wrote (datasets/cards.jsonl, and with
        `held_out_cards` datasets/cards_held_out.jsonl: what answering searches, not training;
        see build.cards) for documents still ingested: what retrieval searches."""
        documents, chunks = self.read_corpus()
        present = {d.doc_id for d in documents}
        for name in ("cards", "cards_held_out") if held_out_cards else ("cards",):
            cards = self.dataset_file(name)
            if cards.is_file():
                chunks += [c for c in map(Chunk.from_dict, read_jsonl(cards)) if c.doc_id in present]
        return documents, chunks

    @property
    def datasets_dir(self) -> Path:
        return self.root / DATASETS_DIR

    def dataset_file(self, name: str) -> Path:
        """datasets/<name>.jsonl: name is cpt, qa_train, qa_val, qa_test, cards or cards_held_out."""
        return self.datasets_dir / f"{name}.jsonl"

    @property
    def stats_file(self) -> Path:
        return self.datasets_dir / STATS_FILE

    def read_stats(self) -> dict | None:
        """datasets/stats.json, or None before the first build."""
        self.repair()
        path = self.stats_file
        return read_json_file(path) if path.is_file() else None

    def read_dataset(self, name: str) -> list[dict]:
        """The rows of datasets/<name>.jsonl; [] when the file is absent."""
        self.repair()
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
        with disk_full_as_error(parent / name):
            parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(dir=parent, prefix=f"{STAGING_PREFIX}{name}-"))

    def commit_documents(self, staged: list[tuple[Path, str]]) -> None:
        """Swap staged document folders in, all or none (swap_in_all)."""
        swap_in_all([(folder, self.document_dir(doc_id)) for folder, doc_id in staged])

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def recover(self, command: str = "recover") -> None:
        """Clean up after a crash: drop staging folders, restore a retired version that lost
        its replacement, and drop one whose replacement is complete. Runs under the workspace
        lock (re-entrant), so it never touches the staging folder of a live writer."""
        if not self.root.is_dir():
            return
        with self.lock(command):
            for parent in (self.documents_dir, self.root):
                if parent.is_dir():
                    _recover(parent)

    def interrupted_swaps(self) -> list[str]:
        """Names of folders whose swap did not finish (a `.retired-<name>` is left)."""
        return _interrupted_swaps(self.documents_dir) + _interrupted_swaps(self.root)

    def repair(self, command: str = "repair") -> None:
        """For readers: finish or undo a swap that a crash interrupted before reading, so no
        command lists (or builds on) 1 of 2 documents. Costs one listing when nothing is wrong.
        A swap in progress belongs to the lock's holder, so this waits for the lock like a
        writer, then recovers. A workspace this process cannot write is reported, not read."""
        broken = self.interrupted_swaps()
        if not broken:
            return
        if not os.access(self.root, os.W_OK):
            raise WorkspaceError(
                f"an interrupted ingest left {', '.join(broken)} half-replaced in {self.root}; run any "
                "docfinetune command that writes (e.g. ingest) with write access to repair")
        self.recover(command)

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def lock_holder_file(self) -> Path:
        return self.root / LOCK_HOLDER_FILE

    def lock_holder(self) -> str:
        """"<pid> (<command line>)" of the process that holds the lock, as it wrote it."""
        try:
            pid, _, argv = self.lock_holder_file.read_text(encoding="utf-8").partition("\n")
        except OSError:
            return "another process"
        return f"{pid.strip()} ({argv.strip() or 'unknown command'})" if pid.strip() else "another process"

    @contextmanager
    def lock(self, command: str | None = None, timeout: float | None = None,
             on_wait: Callable[[str], None] = _print_waiting) -> Iterator[None]:
        """Hold the workspace's exclusive lock: every writer (ingest, build, recovery) does.
        Waits for another holder with one line through `on_wait`; after `timeout` seconds
        (default: lock_timeout_s()) raises WorkspaceError naming the holder. The OS releases
        the lock when its process dies, so a crash never leaves the workspace locked."""
        self.root.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.lock_file)
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(key, filelock.FileLock(key, thread_local=False))
        if lock.is_locked:  # this process holds it already: re-enter
            lock.acquire()
            try:
                yield
            finally:
                lock.release()
            return
        wait = lock_timeout_s() if timeout is None else timeout
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            on_wait(f"waiting for {self.lock_holder()} to finish with {self.root}")
            try:
                lock.acquire(timeout=wait)
            except filelock.Timeout:
                raise WorkspaceError(
                    f"{self.root} is in use by {self.lock_holder()}; gave up after {wait:g} s "
                    f"(wait longer with {LOCK_TIMEOUT_ENV}=SECONDS)") from None
        try:
            write_text_atomic(self.lock_holder_file, f"{os.getpid()}\n{_command_line(command)}\n")
            yield
        finally:
            lock.release()

    def remove_if_empty(self) -> None:
        """Remove a workspace that holds nothing but its lock files (a first ingest that
        failed leaves no folder behind). Called after the lock is released; a process that
        was waiting on that brand-new lock file keeps a lock on the removed file, which only
        matters if two first ingests race and the first one fails."""
        if not self.root.is_dir():
            return
        if all(p.name in (LOCK_FILE, LOCK_HOLDER_FILE) for p in self.root.iterdir()):
            for name in (LOCK_HOLDER_FILE, LOCK_FILE):
                (self.root / name).unlink(missing_ok=True)
            try:
                self.root.rmdir()
            except OSError:
                pass

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WorkspaceError(f"{self.root}: cannot create the workspace ({err.strerror})") from None
        if not os.access(self.root, os.W_OK):
            raise WorkspaceError(f"{self.root}: the workspace is not writable")

    def summary(self) -> dict[str, Any]:
        """Counts for `docfinetune status` (after repairing an interrupted swap)."""
        self.repair()
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
