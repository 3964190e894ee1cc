"""How many of the lawyers' answers in cuad-dev the offline `rules` Q&A generator finds.

    .venv/bin/python benchmarks/qa_coverage.py [--set pdf|more] [--source ingest|txt]
        [--cache DIR] [--write-results] [-v]

`--set pdf` (default) measures the 12 contracts of ../shared/cuad-dev/pdf that the rules were
written against; `--set more` the 60 contracts of ../shared/cuad-dev/more, which they were not
(same layout: pdf/, txt/, questions.jsonl). For each contract the chunks come from
`docfinetune ingest` (run into a temporary workspace, or into `--cache DIR`, which is kept and
reused while it holds the same PDFs), or with `--source txt` from CUAD's reference text split
by langchain's RecursiveCharacterTextSplitter (512/64). For every field of questions.jsonl it
reports the share of the lawyers' answers that match (docfinetune.core.score.answer_matches)
at least one generated answer OF THAT FIELD for that contract, then facts, Q&A pairs and
seconds per contract. Exits 0 with a message when cuad-dev is absent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results import machine, write_section  # noqa: E402

from docfinetune.build.curate import curate  # noqa: E402
from docfinetune.build.generators.rules import RulesQAGenerator  # noqa: E402
from docfinetune.core.config import BuildConfig  # noqa: E402
from docfinetune.core.records import Chunk, Document  # noqa: E402
from docfinetune.core.score import answer_matches  # noqa: E402

CUAD = ROOT.parent / "shared" / "cuad-dev"
FIELDS = ["governing_law", "agreement_date", "effective_date", "expiration_date",
          "renewal_term", "renewal_notice", "parties"]


SETS = {"pdf": CUAD, "more": CUAD / "more"}


def _ingested_names(workspace: Path) -> set[str]:
    names = set()
    for source in (workspace / "documents").glob("*/source.json"):
        try:
            names.add(json.loads(source.read_text())["file_name"])
        except (OSError, ValueError, KeyError):
            return set()
    return names


def load_ingested(pdf_dir: Path, workspace: Path) -> dict[str, tuple[Document, list[Chunk]]]:
    """Run the real ingest stage (unless `workspace` already holds exactly these PDFs, with
    their chunks); key the documents by their PDF file name."""
    pdfs = sorted(p for p in pdf_dir.iterdir() if p.suffix.lower() == ".pdf")
    cached = _ingested_names(workspace) == {p.name for p in pdfs} and all(
        (d / "chunks.jsonl").is_file() for d in (workspace / "documents").iterdir())
    if not cached:
        command = [sys.executable, "-m", "docfinetune", "--workspace", str(workspace), "ingest",
                   *(str(p) for p in pdfs)]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    out = {}
    for doc_dir in sorted((workspace / "documents").iterdir()):
        source = json.loads((doc_dir / "source.json").read_text())
        doc = Document(source["doc_id"], source.get("title", ""), source["file_name"])
        with open(doc_dir / "chunks.jsonl") as f:
            chunks = [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]
        out[doc.file_name] = (doc, chunks)
    return out


def load_txt(txt_dir: Path, titles: dict[str, str]) -> dict[str, tuple[Document, list[Chunk]]]:
    """CUAD's reference text, chunked as ingest would (development fallback)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=512, chunk_overlap=64, add_start_index=True)
    out = {}
    for pdf_name, title in sorted(titles.items()):
        text = (txt_dir / (Path(pdf_name).stem + ".txt")).read_text()
        doc_id = re.sub(r"[^a-z0-9]+", "-", Path(pdf_name).stem.lower()).strip("-")[:60]
        chunks = []
        for i, piece in enumerate(splitter.create_documents([text])):
            start = piece.metadata["start_index"]
            chunks.append(Chunk(f"{doc_id}:{i:04d}", doc_id, i, 1, 1, start,
                                start + len(piece.page_content), "", piece.page_content))
        out[pdf_name] = (Document(doc_id, title, pdf_name), chunks)
    return out


def run(source: str, verbose: bool, large: bool = False, which: str = "pdf",
        cache: Path | None = None) -> tuple[str, dict]:
    base = SETS[which]
    questions = [json.loads(line) for line in open(base / "questions.jsonl") if line.strip()]
    titles = {q["document"]: q["title"] for q in questions}
    with tempfile.TemporaryDirectory() as tmp:
        work = cache if cache is not None else Path(tmp)
        if source == "ingest":
            docs = load_ingested(base / "pdf", work / f"{which}-ws")
        else:
            docs = load_txt(base / "txt", titles)
        if large and (CUAD / "large").is_dir():  # speed only: no questions about these
            docs.update(load_ingested(CUAD / "large", work / "large-ws"))
    generator = RulesQAGenerator()
    per_doc, pairs_by_doc, curated_by_doc = [], {}, {}
    for name, (doc, chunks) in sorted(docs.items()):
        t0 = time.perf_counter()
        pairs = list(generator.generate([doc], chunks))
        seconds = time.perf_counter() - t0
        pairs_by_doc[name] = pairs
        build = BuildConfig()
        curated_by_doc[name] = curate(pairs, chunks, build.curate_max_question_chars,
                                      build.curate_max_answer_chars, build.curate_duplicate_similarity)[0]
        pages = max((c.page_end for c in chunks), default=0)
        per_doc.append((name, pages, len(chunks), len({p.fact_id for p in pairs}), len(pairs), seconds))

    hits = {f: [0, 0, 0] for f in FIELDS}  # found, of, found after curation
    misses = []
    for q in questions:
        pairs = [p for p in pairs_by_doc.get(q["document"], []) if p.field == q["field"]]
        answers = sorted({p.answer for p in pairs})
        ok = any(answer_matches(a, q["answer"], q["field"]) for a in answers)
        kept = {p.answer for p in curated_by_doc.get(q["document"], []) if p.field == q["field"]}
        hits[q["field"]][0] += ok
        hits[q["field"]][1] += 1
        hits[q["field"]][2] += any(answer_matches(a, q["answer"], q["field"]) for a in kept)
        if not ok:
            misses.append((q["document"][:40], q["field"], q["answer"], answers[:3]))

    where = "cuad-dev/pdf" if which == "pdf" else f"cuad-dev/{which} (contracts the rules were not written against)"
    lines = [f"Coverage of {where} lawyers' answers by the `rules` generator (chunks from {source})", ""]
    lines += ["| field | found | of | coverage | after curation |", "|---|---:|---:|---:|---:|"]
    for f in FIELDS:
        found, total, kept = hits[f]
        lines.append(f"| {f} | {found} | {total} | {100 * found / total:.0f}% | {100 * kept / total:.0f}% |")
    found, total, kept = (sum(h[i] for h in hits.values()) for i in range(3))
    lines.append(f"| **all** | {found} | {total} | {100 * found / total:.0f}% | {100 * kept / total:.0f}% |")
    lines += ["", "| contract | pages | chunks | facts | Q&A | seconds |", "|---|---:|---:|---:|---:|---:|"]
    for name, pages, n_chunks, facts, n_pairs, seconds in per_doc:
        lines.append(f"| {name[:45]} | {pages} | {n_chunks} | {facts} | {n_pairs} | {seconds:.2f} |")
    if verbose:
        lines += ["", "Misses (contract, field, lawyers' answer, first generated answers of that field):"]
        lines += [f"- {d} | {f} | {a!r} | {g}" for d, f, a, g in misses]
    return "\n".join(lines), hits


# RESULTS.md's section per set. write_section matches headings by prefix, so the `more`
# heading must not start with the `pdf` one.
HEADINGS = {"pdf": "## qa_coverage", "more": "## Generalisation: qa_coverage on cuad-dev/more"}


def write_results(table: str, argv: list[str], which: str = "pdf") -> None:
    heading = HEADINGS[which]
    write_section(heading, f"{heading} ({dt.date.today().isoformat()})\n\nMachine: {machine()}. "
                  f"Command: `.venv/bin/python benchmarks/qa_coverage.py {' '.join(argv)}`\n\n{table}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="which", choices=sorted(SETS), default="pdf",
                        help="cuad-dev/pdf (default: the contracts the rules were written against) "
                             "or cuad-dev/more (60 others)")
    parser.add_argument("--source", choices=["ingest", "txt"], default="ingest",
                        help="chunks from `docfinetune ingest` of the set's pdf/ (default) or from its txt/")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the ingested workspaces in this folder and reuse them on later runs")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--large", action="store_true",
                        help="also time the long contracts of cuad-dev/large (ingested)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the misses")
    args = parser.parse_args(argv)
    if not CUAD.is_dir():
        print(f"{CUAD} is absent: nothing to measure.")
        return 0
    table, _ = run(args.source, args.verbose, args.large, args.which, args.cache)
    print(table)
    if args.write_results:
        shown = [a for a in argv if a != "--write-results"]
        if args.cache is not None:  # a local folder says nothing about the measurement
            i = shown.index("--cache") if "--cache" in shown else -1
            shown = shown[:i] + shown[i + 2:] if i >= 0 else [a for a in shown if not a.startswith("--cache=")]
        write_results(table, shown, args.which)
    return 0


if __name__ == "__main__":
    sys.exit(main())
