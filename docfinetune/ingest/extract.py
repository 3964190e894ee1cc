"""Find the input files and pull raw page text out of them.

PDF extractors share one small interface (`page_count`, `extract_pages`), import their library
lazily, and turn the library's errors into `BadInputError`s that name the file and the problem.
Long PDFs are split into page ranges that worker processes extract side by side.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Protocol

from docfinetune.core.errors import BadInputError, DocfinetuneError
from docfinetune.core.plugins import EXTRACTORS

PDF_SUFFIXES = {".pdf"}
TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | TEXT_SUFFIXES
EOF_WINDOW_BYTES = 4096  # "%%EOF" must sit near the end; a cut-off download loses it


def collect_inputs(paths: list[Path]) -> tuple[list[Path], list[BadInputError]]:
    """Expand directories (recursively, skipping hidden entries) into supported files.

    Returns the files in a stable order and one error per path that cannot be used.
    """
    files: list[Path] = []
    errors: list[BadInputError] = []
    for path in paths:
        if not path.exists():
            errors.append(BadInputError(path, "no such file or directory"))
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                errors.append(
                    BadInputError(path, "directory holds no .pdf, .txt or .md files")
                )
            files.extend(found)
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            errors.append(
                BadInputError(path, f"unsupported file type '{path.suffix or path.name}' "
                              "(supported: .pdf, .txt, .md)")
            )
        else:
            files.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique, errors


def check_pdf_file(path: Path) -> None:
    """Cheap checks before a parser sees the file: empty, not a PDF, cut off."""
    size = path.stat().st_size
    if size == 0:
        raise BadInputError(path, "empty file (0 bytes)")
    with path.open("rb") as f:
        head = f.read(1024)
        f.seek(max(0, size - EOF_WINDOW_BYTES))
        tail = f.read()
    if b"%PDF-" not in head:
        preview = head[:16].decode("latin-1").encode("unicode_escape").decode("ascii")
        raise BadInputError(path, f"not a PDF file (it starts with '{preview}', not '%PDF-')")
    if b"%%EOF" not in tail:
        raise BadInputError(path, "truncated PDF: the end-of-file marker is missing "
                            "(the file was cut off; copy or download it again)")


def read_text_pages(path: Path) -> list[str]:
    """A text or Markdown file: one page, or one per form feed."""
    data = path.read_bytes()
    if not data:
        raise BadInputError(path, "empty file (0 bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadInputError(path, f"not UTF-8 text (undecodable byte at offset {err.start}); "
                            "save it as UTF-8") from None
    if "\x00" in text:
        raise BadInputError(path, "binary data in a text file")
    return text.split("\f")


class PdfExtractor(Protocol):
    name: str

    def page_count(self, path: Path, password: str | None) -> int: ...

    def extract_pages(self, path: Path, password: str | None, start: int, stop: int) -> list[str]: ...


def _import(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DocfinetuneError(
            f"the {module} extractor needs the '{package}' package: pip install {package}"
        ) from None


class Pypdfium2Extractor:
    """PDFium through pypdfium2: ~0.01 s a page here, layout-faithful text."""

    name = "pypdfium2"

    def _open(self, path: Path, password: str | None):
        pdfium = _import("pypdfium2", "pypdfium2")
        try:
            return pdfium.PdfDocument(str(path), password=password)
        except pdfium.PdfiumError as err:
            raise self._diagnose(path, password, err) from None

    @staticmethod
    def _diagnose(path: Path, password: str | None, err: Exception) -> BadInputError:
        """PDFium refuses encrypted, zero-page and damaged files alike, and its error code is a
        thread-global that can be stale; ask pypdf which of these the file is."""
        try:
            pages = PypdfExtractor().page_count(path, password)
        except BadInputError as diagnosis:
            return diagnosis
        except DocfinetuneError:  # pypdf is not installed
            return BadInputError(path, f"corrupt PDF that cannot be parsed ({err})")
        if pages == 0:
            return BadInputError(path, "the PDF has no pages")
        return BadInputError(path, f"corrupt PDF that PDFium cannot parse ({err}); try --extractor pypdf")

    def page_count(self, path: Path, password: str | None) -> int:
        doc = self._open(path, password)
        try:
            return len(doc)
        finally:
            doc.close()

    def extract_pages(self, path: Path, password: str | None, start: int, stop: int) -> list[str]:
        pdfium = _import("pypdfium2", "pypdfium2")
        doc = self._open(path, password)
        try:
            pages = []
            for i in range(start, stop):
                try:
                    page = doc[i]
                    text = page.get_textpage().get_text_bounded()
                except pdfium.PdfiumError as err:
                    raise BadInputError(path, f"corrupt PDF: page {i + 1} cannot be read ({err})") from None
                pages.append(text)
            return pages
        finally:
            doc.close()


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs a warning per damaged object (18 for one PDF with its middle zeroed) before
    the one line that names the file; keep them out of the output unless -vv (debug) asks."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    if not logger.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="pypdf")
            yield
    finally:
        logger.setLevel(level)


class PypdfExtractor:
    """Pure-Python pypdf: no binary dependency, but ~60x slower than PDFium here."""

    name = "pypdf"

    def _open(self, path: Path, password: str | None):
        pypdf = _import("pypdf", "pypdf")
        try:
            reader = pypdf.PdfReader(str(path), strict=False)
            if reader.is_encrypted:
                if not reader.decrypt(password or ""):
                    hint = "wrong password" if password else "encrypted PDF: give its password with --password"
                    raise BadInputError(path, hint)
            return reader
        except BadInputError:
            raise
        except Exception as err:  # pypdf raises many types on damaged files
            raise BadInputError(path, f"corrupt PDF that cannot be parsed ({type(err).__name__}: {err})") from None

    def page_count(self, path: Path, password: str | None) -> int:
        with _quiet_pypdf():
            reader = self._open(path, password)
            try:
                return len(reader.pages)
            except Exception as err:
                raise BadInputError(path, f"corrupt PDF: the page tree cannot be read ({err})") from None

    def extract_pages(self, path: Path, password: str | None, start: int, stop: int) -> list[str]:
        with _quiet_pypdf():
            reader = self._open(path, password)
            pages = []
            for i in range(start, stop):
                try:
                    pages.append(reader.pages[i].extract_text() or "")
                except Exception as err:
                    raise BadInputError(path, f"corrupt PDF: page {i + 1} cannot be read ({err})") from None
            return pages


def extractor_class(name: str) -> type[PdfExtractor]:
    """The extractor registered under `name` in core/plugins.py."""
    return EXTRACTORS[name].load()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0  # elsewhere: how often a worker checks that its parent lives


def die_with_parent(parent_pid: int) -> None:
    """Worker-pool initializer: the worker ends when ingest (`parent_pid`) does, even after a
    kill -9, which runs no cleanup (4 orphaned workers, ~112 MB, stayed before).

    A forkserver worker's parent is the fork server, which exits when its pipe from ingest
    closes; but every worker inherits a copy of that pipe's write end (to start processes of its
    own), so the server and the workers outlived ingest. Each worker closes its copy; on Linux
    the kernel then sends it SIGKILL when the server exits (PR_SET_PDEATHSIG). Elsewhere a thread
    polls for ingest every PARENT_POLL_S."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_alive_fd", None) is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None

    def alive() -> bool:
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if not alive():  # ingest died before the signal was armed
            os._exit(1)
        return

    def watch() -> None:
        while alive():
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _extract_range(extractor_name: str, path: Path, password: str | None, start: int, stop: int):
    """Worker-process entry point (module level so it pickles)."""
    return start, extractor_class(extractor_name)().extract_pages(path, password, start, stop)


def extract_pdf(
    path: Path,
    extractor_name: str,
    password: str | None = None,
    get_pool: Callable[[], Executor | None] = lambda: None,
    parallel_min_pages: int = 24,
    workers: int = 1,
    on_pages: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Raw text of every page. PDFs of `parallel_min_pages` or more go to the pool's worker
    processes in page ranges; `on_pages(done, total)` reports progress."""
    check_pdf_file(path)
    extractor = extractor_class(extractor_name)()
    total = extractor.page_count(path, password)
    if total == 0:
        raise BadInputError(path, "the PDF has no pages")
    if on_pages:
        on_pages(0, total)
    pool = get_pool() if total >= parallel_min_pages and workers > 1 else None
    if pool is None:
        # Small batches keep the progress bar moving without reopening the file often.
        pages: list[str] = []
        for start in range(0, total, 8):
            pages.extend(extractor.extract_pages(path, password, start, min(total, start + 8)))
            if on_pages:
                on_pages(len(pages), total)
        return pages
    # ~4 ranges per worker balances pages of uneven cost against the cost of reopening.
    step = max(4, -(-total // (workers * 4)))
    futures = [
        pool.submit(_extract_range, extractor_name, path, password, start, min(total, start + step))
        for start in range(0, total, step)
    ]
    by_start: dict[int, list[str]] = {}
    done = 0
    for future in futures:
        start, texts = future.result()
        by_start[start] = texts
        done += len(texts)
        if on_pages:
            on_pages(done, total)
    return [text for start in sorted(by_start) for text in by_start[start]]
