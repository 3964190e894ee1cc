"""How long `ask` takes to its first token: a fresh process per question, and one warm process.

    .venv/bin/python benchmarks/ask_latency.py --workspace DIR [--questions FILE] [--count N]
        [--cold-runs K] [--write-results]

DIR is a workspace with a trained run (e.g. the one `make demo` leaves in docfinetune-workspace).
*Cold*: `docfinetune ask QUESTION` in a new process, K times (the model cache on disk, loading
included: what one command costs). *Warm*: `docfinetune ask -` with N questions on stdin, one
process that loads the model once (issue 12's "warm process"); its first question includes the
load and is reported apart. Each figure is the time `ask` prints ("first token after X s", from the
start of the command or, warm, from when the question is read). Questions: the first N of FILE
(JSONL with "question"; default the sample contract's hand-written questions), asked as the run's
evaluation chose (open-book when fine-tuned + RAG measured better).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results import machine, publish  # noqa: E402

SECTION = "## Ask latency"
FIRST_TOKEN = re.compile(r"first token after ([\d.]+) s")
CLI = [sys.executable, "-m", "docfinetune"]


def first_tokens(stderr: str) -> list[float]:
    return [float(m.group(1)) for m in FIRST_TOKEN.finditer(stderr)]


def ask(workspace: Path, args: list[str], stdin: str | None = None) -> tuple[list[str], list[float]]:
    done = subprocess.run([*CLI, "--workspace", str(workspace), "ask", *args], input=stdin, text=True,
                          capture_output=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"ask failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout.splitlines(), first_tokens(done.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--questions", type=Path, default=ROOT / "sample_docs" / "quillmere_msa.questions.jsonl")
    parser.add_argument("--count", type=int, default=10, help="questions asked in the warm process")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes, one question each")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    rows = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [r["question"] for r in rows][: args.count]
    cold = [ask(args.workspace, [questions[i % len(questions)]])[1][0] for i in range(args.cold_runs)]
    answers, warm = ask(args.workspace, ["-"], "\n".join(questions) + "\n")
    later = warm[1:]
    lines = [f"{SECTION} — {dt.date.today().isoformat()}", "",
             f"`.venv/bin/python benchmarks/ask_latency.py --workspace {args.workspace} --count {args.count} "
             f"--cold-runs {args.cold_runs}`, on {machine()}; the workspace's selected run, asked as its "
             "evaluation chose. Seconds to the first token of the answer:", "",
             "| mode | questions | median | min | max |", "|---|---|---|---|---|",
             f"| cold: a new `ask` process per question (model load included) | {len(cold)} | "
             f"{statistics.median(cold):.1f} | {min(cold):.1f} | {max(cold):.1f} |",
             f"| warm: `ask -`, first question (model load included) | 1 | {warm[0]:.1f} | {warm[0]:.1f} | "
             f"{warm[0]:.1f} |"]
    if later:
        lines.append(f"| warm: `ask -`, the questions after it | {len(later)} | {statistics.median(later):.1f} | "
                     f"{min(later):.1f} | {max(later):.1f} |")
    lines += ["", f"Answers (warm): {len(answers)} lines for {len(questions)} questions."]
    return publish(SECTION, lines, args.write_results)


if __name__ == "__main__":
    raise SystemExit(main())
