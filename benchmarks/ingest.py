"""Ingest benchmark over ../shared/cuad-dev: speed and fidelity of each PDF extractor.

    python benchmarks/ingest.py [--repeat 3] [--write-results]

Per extractor, in one run:
- pages/s of raw extraction (one process) over pdf/ and large/;
- seconds to ingest each large file end to end (extract with the worker pool, clean, chunk,
  write) through `docfinetune.ingest.ingest`, median of --repeat runs, and the CLI's wall time;
- fidelity to CUAD's reference text (txt/): rapidfuzz's normalized Indel similarity (0-100) of
  whitespace-collapsed, NFKC-normalized text, for the raw text, for the cleaned text, and for
  the cleaned text against the reference less the running headers/footers that cleanup removed
  (CUAD's reference keeps them; dropping them is the point of cleanup, so "body" fidelity is the
  fair comparison; the dropped lines are counted and shown so they can be checked).
Also a chunking table: how the overlap setting trades duplicated text for cut sentences.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results import machine, write_section  # noqa: E402

from docfinetune.core.config import IngestConfig  # noqa: E402
from docfinetune.core.plugins import EXTRACTORS  # noqa: E402
from docfinetune.core.workspace import Workspace  # noqa: E402
from docfinetune.ingest import ingest  # noqa: E402
from docfinetune.ingest.chunk import chunk_document  # noqa: E402
from docfinetune.ingest.clean import clean_pages, normalize_chars  # noqa: E402
from docfinetune.ingest.extract import extractor_class  # noqa: E402

CUAD = ROOT.parent / "shared" / "cuad-dev"
SECTION = "## Ingest"


def collapsed(text: str) -> str:
    """NFKC, straight quotes, one space for any whitespace run."""
    return re.sub(r"\s+", " ", normalize_chars(text)).strip()


def normalized(text: str) -> str:
    """Collapsed, and no space after a hyphen: "paper- based" is how a raw extraction (and
    CUAD's reference) keeps a line break after a real hyphen; cleanup writes "paper-based"."""
    return re.sub(r"-\s+", "-", collapsed(text))


def fidelity(text: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.ratio(text, reference)


def without_lines(reference: str, lines: list[str]) -> str:
    """The reference less the dropped lines: each removed as whole words at its first place
    after the previous one (lines come in page order), so "2" never eats part of "2591"."""
    reference = collapsed(reference)
    kept, position = [], 0
    for line in lines:
        m = re.compile(rf"(?<!\S){re.escape(collapsed(line))}(?!\S)").search(reference, position)
        if m:
            kept.append(reference[position:m.start()])
            position = m.end()
    kept.append(reference[position:])
    return normalized(" ".join(kept))


def raw_pages(extractor: str, pdf: Path) -> tuple[list[str], float]:
    e = extractor_class(extractor)()
    started = time.perf_counter()
    pages = e.extract_pages(pdf, None, 0, e.page_count(pdf, None))
    return pages, time.perf_counter() - started


def ingest_seconds(pdf: Path, extractor: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            ingest([pdf], Workspace(Path(tmp)), IngestConfig(extractor=extractor))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def cli_seconds(pdf: Path, extractor: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "docfinetune", "--workspace", tmp, "ingest",
                        "--extractor", extractor, str(pdf)], check=True, capture_output=True)
        return time.perf_counter() - started


def chunking_table(texts: list[list[str]]) -> list[str]:
    """For each overlap: chunks, mean size, duplicated share, share of sentences cut apart
    (a sentence no single chunk holds whole)."""
    rows = ["| overlap chars | chunks | mean chars | duplicated text | sentences held whole by a chunk |",
            "|---|---|---|---|---|"]
    for overlap in (0, 64, 96, 128):
        chunks, chars, total, whole, sentences = 0, 0, 0, 0, 0
        for pages in texts:
            doc = "\n\n".join(pages)
            rows_ = chunk_document("d", pages, 512, overlap)
            chunks += len(rows_)
            chars += sum(len(r["text"]) for r in rows_)
            total += len(doc)
            spans = [(r["char_start"], r["char_end"]) for r in rows_]
            for m in re.finditer(r"[^.\n]{20,400}\.", doc):  # sentences short enough to fit
                sentences += 1
                whole += any(s <= m.start() and m.end() <= e for s, e in spans)
        rows.append(f"| {overlap} | {chunks} | {chars / chunks:.0f} | {100 * (chars / total - 1):.1f}% "
                    f"| {100 * whole / sentences:.1f}% |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not CUAD.is_dir():
        print(f"skipped: {CUAD} is absent (the shared development set sits beside the checkout)")
        return 0
    pdfs = sorted((CUAD / "pdf").iterdir())
    large = sorted((CUAD / "large").iterdir())
    lines = [f"{SECTION} — {date.today().isoformat()}", "",
             f"Machine: {machine()}. Command: `python benchmarks/ingest.py --repeat {args.repeat}"
             " --write-results`.", ""]

    lines += ["| extractor | pages/s (raw, 1 process) | fidelity raw | fidelity cleaned | "
              "fidelity cleaned, body | headers/footers dropped | "
              + " | ".join(f"ingest {p.name[:12]}… s (median)" for p in large)
              + " | CLI wall s (154-page) |",
              "|---" * (7 + len(large)) + "|"]
    cleaned_texts: list[list[str]] = []
    summary = {}
    for extractor in EXTRACTORS:
        pages_total, seconds_total, raw_f, clean_f, body_f, dropped = 0, 0.0, [], [], [], 0
        for pdf in pdfs + large:
            pages, seconds = raw_pages(extractor, pdf)
            pages_total += len(pages)
            seconds_total += seconds
            ref_path = CUAD / "txt" / (pdf.stem + ".txt")
            cleaned = clean_pages(pages)
            if extractor == "pypdfium2":
                cleaned_texts.append(cleaned.pages)
            dropped += len(cleaned.dropped_lines)
            if ref_path.is_file():
                reference_text = ref_path.read_text(encoding="utf-8")
                reference = normalized(reference_text)
                raw_f.append(fidelity(normalized("\n".join(pages)), reference))
                clean_text = normalized("\n".join(cleaned.pages))
                clean_f.append(fidelity(clean_text, reference))
                body_f.append(fidelity(clean_text, without_lines(reference_text, cleaned.dropped_lines)))
        repeat = args.repeat if extractor == "pypdfium2" else 1  # pypdf takes a minute a run
        ingest_times = [ingest_seconds(p, extractor, repeat) for p in large]
        cli = cli_seconds(large[0], extractor)
        summary[extractor] = (statistics.mean(raw_f), statistics.mean(body_f), ingest_times)
        lines.append(
            f"| {extractor} | {pages_total / seconds_total:.1f} | {statistics.mean(raw_f):.3f} "
            f"| {statistics.mean(clean_f):.3f} | {statistics.mean(body_f):.3f} | {dropped} | "
            + " | ".join(f"{t:.2f}" for t in ingest_times) + f" | {cli:.2f} |"
        )
        print(lines[-1], flush=True)
    best_raw = max(v[0] for v in summary.values())
    chosen = IngestConfig().extractor
    lines += ["", f"Default extractor: {chosen}. Its cleaned body fidelity {summary[chosen][1]:.3f} vs the "
              f"better raw extractor's {best_raw:.3f} "
              f"({'meets' if summary[chosen][1] >= best_raw else 'MISSES'} the target). "
              f"154-page contract ingested in {summary[chosen][2][0]:.2f} s "
              f"({'meets' if summary[chosen][2][0] <= 3 else 'MISSES'} the ≤ 3 s target).", ""]
    lines += ["Chunking (pypdfium2, all 14 contracts, 512-character chunks):", ""]
    lines += chunking_table(cleaned_texts) + [""]
    report = "\n".join(lines)
    print(report)
    if args.write_results:
        write_section(SECTION, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
