"""How many of a contract's typed values the offline `coverage` generator asks about.

    .venv/bin/python benchmarks/span_coverage.py [--set pdf|more] [--no-table-rows] [--cache DIR] [--write-results]

Every duration, amount of money and percentage in a document's text (the generator's own
patterns, `coverage.DURATION`, `MONEY`, `PERCENT`) is a value a user may ask about. This counts
how many of them are the answer of at least one generated question (the answer's offsets cover
the value), per type, over the contracts of ../shared/cuad-dev/pdf (12) or /more (60), ingested
as `benchmarks/qa_coverage.py` does. Values in tables and headings are counted too, so 100% is not
the ceiling the generator aims at (it asks about prose). Exits 0 with a message when cuad-dev is
absent. `--no-table-rows` switches off `build.coverage.table_rows` (on by default since 2026-12-02).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qa_coverage import CUAD, ROOT, SETS, load_ingested  # noqa: E402
from results import machine, write_section  # noqa: E402

sys.path.insert(0, str(ROOT))

from docfinetune.build.generators import coverage  # noqa: E402
from docfinetune.core.config import CoverageQAConfig  # noqa: E402

TYPES = {"duration": coverage.DURATION, "money": coverage.MONEY, "percent": coverage.PERCENT}


def asked_values(doc, chunks, config: CoverageQAConfig) -> dict[str, list[int]]:
    """{type: [values asked about, values in the text]} for one document."""
    text = coverage._DocText(chunks).text
    pairs = coverage.CoverageQAGenerator(config).generate([doc], chunks)
    answers = sorted({(p.meta["answer_start"], p.meta["answer_end"]) for p in pairs if "answer_start" in p.meta})
    counts = {}
    for name, pattern in TYPES.items():
        found = [m.span() for m in pattern.finditer(text)]
        # an answer may trim the value's edges by a character or two ("$5,000,000" of "$5,000,000.")
        asked = sum(any(a <= s and e <= b + 2 for a, b in answers) for s, e in found)
        counts[name] = [asked, len(found)]
    return counts


def run(which: str, cache: Path | None, table_rows: bool = True) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        docs = load_ingested(SETS[which] / "pdf", (cache or Path(tmp)) / f"{which}-ws")
    config = CoverageQAConfig(table_rows=table_rows)
    totals = {name: [0, 0] for name in TYPES}
    started = time.perf_counter()
    for doc, chunks in docs.values():
        for name, (asked, found) in asked_values(doc, chunks, config).items():
            totals[name][0] += asked
            totals[name][1] += found
    seconds = time.perf_counter() - started
    lines = [f"{len(docs)} contracts of cuad-dev/{'pdf' if which == 'pdf' else 'more'}"
             f"{'' if table_rows else ', table rows off'}; generation "
             f"{seconds:.1f} s in all.", "", "| value | in the text | asked about | share |", "|---|---:|---:|---:|"]
    for name, (asked, found) in totals.items():
        lines.append(f"| {name} | {found} | {asked} | {100 * asked / max(found, 1):.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="which", choices=sorted(SETS), default="pdf")
    parser.add_argument("--no-table-rows", dest="table_rows", action="store_false", help="build.coverage.table_rows off")
    parser.add_argument("--cache", type=Path, default=None, help="reuse ingested workspaces kept in this folder")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if not CUAD.is_dir():
        print(f"{CUAD} is absent: nothing to measure.")
        return 0
    table = run(args.which, args.cache, args.table_rows)
    print(table)
    if args.write_results:
        heading = f"## span_coverage on cuad-dev/{args.which}{'' if args.table_rows else ' (table rows off)'}"
        write_section(heading, f"{heading} ({dt.date.today().isoformat()})\n\nMachine: {machine()}. Command: "
                      f"`.venv/bin/python benchmarks/span_coverage.py --set {args.which}{'' if args.table_rows else ' --no-table-rows'}`\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
