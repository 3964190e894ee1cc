"""Retrieval benchmark: does BM25 (docfinetune.core.retrieve) rank the chunk that holds the answer first?

    .venv/bin/python benchmarks/retrieval.py [--set dev|more|both] [--cache DIR] [--only LABEL]
        [--write-results] [-v]

Question sets: `dev` (default) asks the lawyers' questions of ../shared/cuad-dev/questions.jsonl
of their 12 contracts (pdf/) and the sample contract's hand-written questions
(sample_docs/quillmere_msa.questions.jsonl); `more` the lawyers' questions of the 60 contracts
of cuad-dev/more (a generalisation check: the retriever was not tuned on them); `both` the two
in one report (the one RESULTS.md section "## Retrieval" holds). Each contract is
ingested alone with the real ingest stage, as `eval` searches a workspace of one contract: the
workspaces of `benchmarks/knowledge.py prepare` (.bench/knowledge/<doc id>) are read when they hold
the contract, else it is ingested into `--cache DIR` (default: a folder under the system's temp
directory, kept and reused).

A chunk holds the answer when `is_supported(answer, chunk.text)` (docfinetune.core.score): the
answer's words all occur in the chunk, after the scorer's normalisation of case, punctuation,
numbers and dates; an answer of several parts ("A; B") follows answer_matches' rule: every part
for parties and governing law, one part (alternative spellings) for the other fields. Questions whose answer no chunk holds (written differently from the text, or
split over two chunks: both counted) are left out of recall and MRR and reported. The query is
the question as asked (`ask --sources` and `eval`'s RAG systems search with the question alone).
recall@k: share of questions with a chunk holding the answer among the first k results; MRR:
mean of 1 / rank of the first such chunk (0 when none comes back). A result that comes back
longer than its stored chunk (`retrieval.neighbour_tail_chars`) counts when its own text holds the answer.

Each row is a retriever setting (fields of the pipeline's `retrieval` section, RetrievalConfig,
and the ANSWER_TYPES table of docfinetune.core.retrieve, set for the row): *before* is the index
before issue 12 (one field, no stemming, no legal stopwords, no expansion), *+ idea* adds one
idea to it, *now* is the default as it stands (the chunks alone), *now + fact cards* searches
the chunks and the fact cards `build` writes (build/cards.py: the rules generator's
document-level facts, those of held-out facts too, as answering searches them; a card that
states the answer counts as a hit;
its question a field of its own at `retrieval.card_question_weight`, the default's), *now + fact
cards, card questions xW* the same at weight W (x0: the cards' questions are only text), *now +
fact cards, none for held-out facts* as training's retrieval searches (and answering did before), and *now − idea* (or *now + idea* for one the default leaves off) toggles one. ms/query: median over the questions
of the best of 3 `search(question, 8)` calls; build: milliseconds to index 1,000 chunks (median
over contracts). Exits 0 with a message when cuad-dev is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results import machine, publish  # noqa: E402

from docfinetune.core import retrieve  # noqa: E402
from docfinetune.core.config import RetrievalConfig  # noqa: E402
from docfinetune.core.errors import WorkspaceError  # noqa: E402
from docfinetune.core.records import Chunk, Document  # noqa: E402
from docfinetune.core.score import is_supported  # noqa: E402
from docfinetune.core.workspace import Workspace  # noqa: E402

CUAD = ROOT.parent / "shared" / "cuad-dev"
SAMPLE = ROOT / "sample_docs" / "quillmere_msa.pdf"
PREPARED = ROOT / ".bench" / "knowledge"
SECTION = "## Retrieval"
KS = (1, 4, 8)
LATENCY_K = 8
REPEATS = 3

# Each idea: its settings off, and on ({}: the default's own values, when the default keeps it).
# Settings are fields of RetrievalConfig (the pipeline's `retrieval` section), except
# ANSWER_TYPES, a module table of docfinetune.core.retrieve.
IDEAS: dict[str, tuple[dict, dict]] = {
    "heading field": ({"heading_field": False}, {"heading_field": True}),
    "title words": ({"title_weight": 0.0, "title_word_weight": 1.0}, {}),
    "legal stopwords": ({"drop_legal_stopwords": False}, {"drop_legal_stopwords": True}),
    "stemming": ({"stemming": False}, {"stemming": True}),
    "query expansion": ({"expansion_weight": 0.0}, {}),
    "answer types": ({"answer_type_weight": 0.0}, {}),
    "preamble marker": ({"ANSWER_TYPES": {k: v for k, v in retrieve.ANSWER_TYPES.items() if k != "preamble"}},
                        {"ANSWER_TYPES": retrieve.ANSWER_TYPES}),
    "neighbour tail": ({"neighbour_tail_chars": 0}, {"neighbour_tail_chars": 200}),
}
# an idea's "on" settings when the default leaves it off (its settings at their off values)
TRIAL_ON = {"title words": {"title_weight": 1.0, "title_word_weight": 0.1},
            "query expansion": {"expansion_weight": 0.5}, "answer types": {"answer_type_weight": 1.0}}
CONFIG_FIELDS = {f.name for f in dataclasses.fields(RetrievalConfig)}


@dataclass
class Case:
    question: str
    answer: str
    field: str
    gold: set[int]  # numbers of the chunks that hold the answer
    straddles: bool = False  # no chunk holds it, but two neighbouring chunks together do


@dataclass
class Contract:
    name: str
    documents: list[Document]
    chunks: list[Chunk]
    cases: list[Case] = field(default_factory=list)
    cards: list[Chunk] = field(default_factory=list)  # the fact cards `build` writes (default settings)
    held_out_cards: list[Chunk] = field(default_factory=list)  # those of held-out facts (answering only)


CARD_QUESTION_WEIGHTS = (0.0, 1.0, 2.0)  # retrieval.card_question_weight, with fact cards
CARDS = "FACT_CARDS"  # a row's pseudo-setting: search the chunks and the contract's fact cards ("trained": not the held-out facts')


def fact_cards_for(documents: list[Document], chunks: list[Chunk]) -> tuple[list[Chunk], list[Chunk]]:
    """The fact cards `build` would write with the default pipeline (its own generate, curate and
    split, `build.split_qa`): those of training facts, and those of held-out (test) facts, which
    only answering searches."""
    from docfinetune.build import split_qa
    from docfinetune.build.cards import fact_cards
    from docfinetune.core.config import load_pipeline

    kept, _, splits, _ = split_qa(load_pipeline("default"), documents, chunks)
    return fact_cards(kept, chunks, splits["test"])


def _module_defaults() -> dict:
    names = {k for off, on in IDEAS.values() for k in [*off, *on]}
    defaults = RetrievalConfig()
    return {k: getattr(defaults if k in CONFIG_FIELDS else retrieve, k) for k in names}


def _idea_is_on(name: str, defaults: dict) -> bool:
    off, _ = IDEAS[name]
    return any(defaults[k] != v for k, v in off.items())


def _on(name: str, defaults: dict) -> dict:
    off, on = IDEAS[name]
    if _idea_is_on(name, defaults):
        return {k: defaults[k] for k in off} | on
    return TRIAL_ON.get(name, {}) | on


def variants() -> list[tuple[str, dict]]:
    defaults = _module_defaults()
    before = {k: v for off, _ in IDEAS.values() for k, v in off.items()}
    rows = [("before", before)]
    rows += [(f"before + {name}", before | _on(name, defaults)) for name in IDEAS]
    rows.append(("now", {}))
    rows.append(("now + fact cards", {CARDS: True}))
    rows.append(("now + fact cards, none for held-out facts", {CARDS: "trained"}))
    for weight in CARD_QUESTION_WEIGHTS:
        if weight != RetrievalConfig().card_question_weight:
            rows.append((f"now + fact cards, card questions x{weight:g}", {CARDS: True, "card_question_weight": weight}))
    for name in IDEAS:
        if _idea_is_on(name, defaults):
            rows.append((f"now − {name}", IDEAS[name][0]))
        else:
            rows.append((f"now + {name}", _on(name, defaults)))
    return rows


@contextlib.contextmanager
def settings(overrides: dict):
    saved = {k: getattr(retrieve, k) for k in overrides}
    try:
        for k, v in overrides.items():
            setattr(retrieve, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(retrieve, k, v)


# --------------------------------------------------------------------------- data

def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def workspace_for(pdf: Path, cache: Path) -> Workspace:
    """A workspace holding `pdf` alone, ingested: knowledge.py's, the cache's, or a fresh one."""
    from docfinetune.core.config import IngestConfig
    from docfinetune.ingest import doc_id_for, ingest

    doc_id = doc_id_for(pdf)
    for root in (PREPARED / doc_id, cache / doc_id):
        workspace = Workspace(root)
        try:
            documents, chunks = workspace.read_corpus()
        except (WorkspaceError, OSError, ValueError):
            continue
        if [d.file_name for d in documents] == [pdf.name] and chunks:
            return workspace
    workspace = Workspace(cache / doc_id)
    print(f"ingesting {pdf.name} into {workspace.root}", file=sys.stderr)
    ingest([pdf], workspace, IngestConfig())
    return workspace


def holds(answer: str, field: str, text: str) -> bool:
    """`is_supported` with answer_matches' rule for answers of several parts ("A; B"): every part
    for parties and governing law, any part (alternative spellings of one date) otherwise."""
    parts = [p.strip() for p in answer.split(";") if p.strip(" ;,.")] or [answer]
    found = (is_supported(p, text) for p in parts)
    return all(found) if field in ("parties", "governing_law") else any(found)


def load_set(pdf_dir: Path, rows: list[dict], cache: Path, name_of=lambda row: row["document"]) -> list[Contract]:
    by_pdf: dict[str, list[dict]] = {}
    for row in rows:
        by_pdf.setdefault(name_of(row), []).append(row)
    contracts = []
    for pdf_name, questions in sorted(by_pdf.items()):
        documents, chunks = workspace_for(pdf_dir / pdf_name, cache).read_corpus()
        trained, held_out = fact_cards_for(documents, chunks)
        contract = Contract(pdf_name, documents, chunks, cards=trained, held_out_cards=held_out)
        for row in questions:
            gold = {i for i, c in enumerate(chunks) if holds(row["answer"], row.get("field", ""), c.text)}
            straddles = not gold and any(
                holds(row["answer"], row.get("field", ""), f"{a.text} {b.text}") for a, b in zip(chunks, chunks[1:]))
            contract.cases.append(Case(row["question"], row["answer"], row.get("field", ""), gold, straddles))
        contracts.append(contract)
    return contracts


def question_sets(which: str, cache: Path) -> dict[str, list[Contract]] | None:
    """Question set name -> its contracts; None when cuad-dev is absent."""
    if not (CUAD / "questions.jsonl").is_file():
        return None
    sets = {}
    if which in ("dev", "both"):
        lawyers = load_set(CUAD / "pdf", _read_jsonl(CUAD / "questions.jsonl"), cache)
        sample = load_set(SAMPLE.parent, _read_jsonl(SAMPLE.with_suffix(".questions.jsonl")), cache,
                          name_of=lambda row: SAMPLE.name)
        sets = {"lawyers' (cuad-dev)": lawyers, "hand-written (sample)": sample,
                "lawyers' + hand-written": lawyers + sample}
    more = CUAD / "more"
    if which in ("more", "both") and (more / "questions.jsonl").is_file():
        sets["lawyers' on unseen contracts (cuad-dev/more)"] = load_set(
            more / "pdf", _read_jsonl(more / "questions.jsonl"), cache)
    return sets or None


# --------------------------------------------------------------------------- measuring

@dataclass
class Outcome:
    ranks: list[int | None] = field(default_factory=list)  # per answerable question
    misses: list[tuple[str, str, Case, list[Chunk]]] = field(default_factory=list)
    query_ms: list[float] = field(default_factory=list)
    build_ms_per_1000: list[float] = field(default_factory=list)

    def recall(self, k: int) -> float:
        return sum(r is not None and r <= k for r in self.ranks) / len(self.ranks)

    def mrr(self) -> float:
        return sum(1 / r for r in self.ranks if r is not None) / len(self.ranks)


def _holds(case: Case, hit: Chunk, number: dict[int, int], cache: dict) -> bool:
    i = number.get(id(hit))
    if i is not None:
        return i in case.gold
    key = (id(case), hit.chunk_id, hit.text)
    if key not in cache:
        cache[key] = holds(case.answer, case.field, hit.text)
    return cache[key]


def measure(contracts: list[Contract], overrides: dict) -> Outcome:
    out = Outcome()
    supported: dict = {}
    overrides = dict(overrides)
    with_cards = overrides.pop(CARDS, False)
    config = RetrievalConfig(**{k: v for k, v in overrides.items() if k in CONFIG_FIELDS})
    with settings({k: v for k, v in overrides.items() if k not in CONFIG_FIELDS}):
        for contract in contracts:
            started = time.perf_counter()
            cards = (contract.cards + ([] if with_cards == "trained" else contract.held_out_cards)) if with_cards else []
            index = retrieve.BM25Index(contract.chunks + cards,
                                       {d.doc_id: d.title for d in contract.documents}, config)
            out.build_ms_per_1000.append((time.perf_counter() - started) * 1e6 / len(contract.chunks))
            # a chunk's number decides from `gold`; a card is checked for the answer itself
            number = {id(c): i for i, c in enumerate(index.chunks[:len(contract.chunks)])}
            for case in contract.cases:
                if not case.gold:
                    continue
                timings = []
                for _ in range(REPEATS):
                    started = time.perf_counter()
                    index.search(case.question, LATENCY_K)
                    timings.append(time.perf_counter() - started)
                out.query_ms.append(min(timings) * 1000)
                hits = [c for c, _ in index.search(case.question, len(index))]
                rank = next((r for r, hit in enumerate(hits, 1) if _holds(case, hit, number, supported)), None)
                out.ranks.append(rank)
                if rank is None or rank > 4:
                    out.misses.append((contract.name, case.question, case, hits[:4]))
    return out


def table(name: str, contracts: list[Contract], rows: list[tuple[str, Outcome]]) -> list[str]:
    cases = [c for contract in contracts for c in contract.cases]
    unanswerable = [c for c in cases if not c.gold]
    straddling = sum(c.straddles for c in unanswerable)
    chunks = sum(len(c.chunks) for c in contracts)
    carded = sum(any(holds(c.answer, c.field, card.text) for card in contract.cards + contract.held_out_cards)
                 for contract in contracts for c in contract.cases if not c.gold)
    cards = sum(len(c.cards) + len(c.held_out_cards) for c in contracts)
    held_out = sum(len(c.held_out_cards) for c in contracts)
    lines = [f"**{name}**: {len(cases)} questions on {len(contracts)} contract(s) ({chunks} chunks); "
             f"{len(unanswerable)} left out because no chunk holds the answer ({straddling} of them split over "
             f"two neighbouring chunks, the rest written differently from the text), so "
             f"{len(cases) - len(unanswerable)} counted. The {cards} fact cards ({held_out} of held-out facts) state "
             f"the answer of {carded} "
             "of the left-out ones (not counted in any row).", "",
             "| retriever | recall@1 | recall@4 | recall@8 | MRR | ms/query | build ms/1k chunks |",
             "|---|---|---|---|---|---|---|"]
    for label, o in rows:
        lines.append(f"| {label} | " + " | ".join(f"{o.recall(k):.1%}" for k in KS)
                     + f" | {o.mrr():.3f} | {statistics.median(o.query_ms):.3f} "
                     f"| {statistics.median(o.build_ms_per_1000):.0f} |")
    return lines


def _settings_line() -> str:
    return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(RetrievalConfig()).items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="which", choices=["dev", "more", "both"], default="dev",
                        help="dev: cuad-dev's 12 contracts and the sample; more: cuad-dev/more's 60; both")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "docfinetune-retrieval",
                        help="where contracts not prepared by knowledge.py are ingested (kept, reused)")
    parser.add_argument("--only", action="append", default=[], help="rows whose label contains this")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the questions `now` misses at 4")
    args = parser.parse_args(argv)

    sets = question_sets(args.which, args.cache)
    if sets is None:
        print(f"skipped: {CUAD} is absent")
        return 0
    rows = [r for r in variants() if not args.only or any(o in r[0] for o in args.only)]
    lines = [f"{SECTION} — {dt.date.today().isoformat()}", "",
             f"`.venv/bin/python benchmarks/retrieval.py --set {args.which} --write-results`, on "
             + machine() + ". BM25 over each contract's 512-character chunks "
             "(`docfinetune.core.retrieve`), the question as the query; a chunk holds the answer when "
             "`is_supported(answer, chunk text)`. `now` (the `retrieval` section's defaults): " + _settings_line() + ". Rows are explained in "
             "the benchmark's docstring.", ""]
    for name, contracts in sets.items():
        outcomes = [(label, measure(contracts, overrides)) for label, overrides in rows]
        lines += table(name, contracts, outcomes) + [""]
        if args.verbose and "+" not in name:
            now = dict(outcomes).get("now")
            for contract_name, question, case, top in (now.misses if now else []):
                print(f"MISS@4 [{contract_name[:30]}] {question} -> {case.answer!r} gold={sorted(case.gold)[:6]}; "
                      f"top: {[c.index for c in top]} {[c.heading[:25] for c in top]}", file=sys.stderr)
    return publish(SECTION, lines, args.write_results)


if __name__ == "__main__":
    sys.exit(main())
