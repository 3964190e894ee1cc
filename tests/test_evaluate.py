"""The eval stage: four systems on the same questions, scoring with Wilson intervals, the
memorization/extraction/groundedness audits, the report files, and clear errors.

A random 2-layer model answers garbage, so these tests check the mechanics; the one real
behaviour checked is that a RAG prompt carries the chunk that states the answer (and that a
generator reading it then scores, through the real scoring path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from docfinetune.core.config import EvalConfig, GenerationConfig, load_pipeline
from docfinetune.core.errors import BadInputError, ConfigError, WorkspaceError
from docfinetune.core.generate import (
    SECTION_NAMED,
    answer_confidence,
    chunk_pages,
    closed_book_answers,
    continue_recitals,
    generate,
    quoted_clause,
    rag_prompt,
    recall_prompt,
    recall_quotes,
    recital_prefix,
    recital_quotes,
    recited_value,
)
from docfinetune.core.records import Chunk
from docfinetune.core.retrieve import BM25Index
from docfinetune.core.workspace import Workspace, read_jsonl
from docfinetune.evaluate import SYSTEMS, evaluate
from docfinetune.evaluate.memorization import (
    VerbatimIndex,
    audit_answers,
    common_prefix_chars,
    continue_cases,
    copied,
    read_back_cases,
    score_extraction,
    score_read_back,
    sentence_cases,
    split_record,
)
from docfinetune.evaluate.questions import load_questions
from docfinetune.evaluate.report import summary_table
from docfinetune.evaluate.stats import accuracy, by_field, compare, mcnemar_p, wilson_interval
from tests.conftest import make_fake_run, write_pdf

FAST = {"max_new_tokens": 6, "batch_size": 4}
FAST_EVAL = {"extraction_chunks": 3, "extraction_max_new_tokens": 8}


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def ingested(run_cli, contract_pdf: Path, workspace_dir: Path) -> Workspace:
    assert run_cli("ingest", contract_pdf).exit_code == 0
    return Workspace(workspace_dir)


@pytest.fixture
def built(ingested: Workspace, run_cli, tiny_model_dir: Path) -> Workspace:
    result = run_cli("build", "--base-model", tiny_model_dir, "--split-val-fraction", "0.2",
                     "--split-test-fraction", "0.2")
    assert result.exit_code == 0, result.output + result.stderr
    return ingested


def pipeline(tiny_model_dir: Path, **eval_overrides):
    return load_pipeline("default", {"model": {"base_model": str(tiny_model_dir), "device": "cpu"}, "generation": FAST,
                                     "eval": {**FAST_EVAL, **eval_overrides}})


def make_run(workspace: Workspace, tiny_model_dir: Path, run_id: str = "run-1", steps=(10, 20),
             selected: int = 20) -> Path:
    """A finished run as train/select leave it (conftest.make_fake_run): the adapters are random
    (not zero), so they change the model's answers."""
    return make_fake_run(workspace, pipeline(tiny_model_dir), run_id, steps, selected,
                         targets=("q_proj", "v_proj", "down_proj"))


# --------------------------------------------------------------------------- statistics

def test_wilson_interval_on_known_counts():
    low, high = wilson_interval(8, 10, 0.95)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(0, 10, 0.95)
    assert low == 0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10, 0.95)
    assert round(low, 4) == 0.7225 and high == 1
    assert wilson_interval(0, 0) is None
    narrow, wide = wilson_interval(40, 50, 0.8), wilson_interval(40, 50, 0.99)
    assert wide[0] < narrow[0] < 0.8 < narrow[1] < wide[1]


def test_accuracy_fields_and_paired_comparison():
    row = accuracy([True, False, None, True], 0.95)  # None: no reference answer, not scored
    assert (row["correct"], row["scored"], row["accuracy"]) == (2, 3, 2 / 3)
    assert accuracy([None], 0.95)["accuracy"] is None
    fields = ["law", "law", "fee", ""]
    table = by_field(fields, {"a": [True, True, False, True], "b": [False, True, True, None]}, 0.95)
    assert set(table) == {"fee", "law"}
    assert (table["law"]["a"]["correct"], table["law"]["a"]["scored"]) == (2, 2)
    assert (table["fee"]["b"]["correct"], table["fee"]["b"]["scored"]) == (1, 1)
    result = compare("a", [True] * 6 + [False, None], "b", [False] * 6 + [False, True])
    assert (result["only_a"], result["only_b"], result["neither"], result["questions"]) == (6, 0, 1, 7)
    assert math.isclose(result["p_value"], 2 / 64) and mcnemar_p(0, 0) == 1.0 and mcnemar_p(4, 4) == 1.0


# --------------------------------------------------------------------------- memorization

TRAINING = "The Client shall pay the Provider a monthly fee of $12,500 within thirty (30) days\nof each invoice."


def test_copied_share_counts_only_runs_of_at_least_n_characters():
    index = VerbatimIndex([TRAINING, "Vermont"], min_chars=20)
    whole = copied("a monthly fee of $12,500 within thirty (30) days", index)
    assert (whole.chars, whole.copied_chars, whole.share) == (48, 48, 1.0)
    # " the Provider a monthly fee of $12,500 " is 40 characters found verbatim; the rest is not
    mixed = copied("It says: the Provider a monthly fee of $12,500 was due", index)
    assert (mixed.chars, mixed.copied_chars, mixed.longest_run_chars) == (54, 40, 40)
    # line breaks in the training text and double spaces in an answer are one space
    assert copied("(30) days  of each invoice.", index).share == 1.0
    # short shared words (< 20 characters in a row) are not copying
    assert copied("Vermont pays thirty days", index).copied_chars == 0
    assert copied("", index).chars == 0 and copied("short", index).share == 0.0
    # runs from two texts never join across them
    assert copied("days\nof each invoice.Vermont", VerbatimIndex([TRAINING, "Vermont"], 27)).copied_chars == 0


def test_audit_answers_mean_sd_and_worst_cases():
    index = VerbatimIndex([TRAINING], min_chars=20)
    answers = ["a monthly fee of $12,500 within thirty (30) days",  # 1.0
               "It says: the Provider a monthly fee of $12,500 was due",  # 40/54
               "nothing like it at all",  # 0
               ""]  # empty: not counted
    audit = audit_answers(["q1", "q2", "q3", "q4"], answers, index, worst=5)
    shares = [1.0, 40 / 54, 0.0]
    assert (audit["answers"], audit["empty_answers"]) == (3, 1)
    assert math.isclose(audit["copied_share"]["mean"], sum(shares) / 3)
    mean = sum(shares) / 3
    assert math.isclose(audit["copied_share"]["std"], math.sqrt(sum((s - mean) ** 2 for s in shares) / 2))
    assert math.isclose(audit["mostly_copied"], 2 / 3)
    assert [w["question"] for w in audit["worst"]] == ["q1", "q2"]  # most copied first; none uncopied


def test_extraction_scoring_and_record_split():
    prompt, rest = split_record("alpha beta gamma delta", 0.5)
    assert (prompt, rest) == ("alpha beta", " gamma delta")
    cases = [{"chunk_id": "d:0000", "prompt": "x", "reference": " within thirty (30) days of each invoice."},
             {"chunk_id": "d:0001", "prompt": "y", "reference": " the State of Vermont and the courts"}]
    scored = score_extraction(cases, [" within thirty (30) days of each invoice. And", " Ohio law"], min_chars=20)
    assert scored["records"] == 2 and scored["reproduced_whole"] == 1
    assert scored["reproduced_share"]["max"] == 1.0 and scored["reproduced_share"]["mean"] == 0.5
    assert scored["exact_prefix_chars"]["max"] == len("within thirty (30) days of each invoice.")
    assert scored["worst"][0]["chunk_id"] == "d:0000"
    assert common_prefix_chars("the State of Ohio", "the State of Vermont") == len("the State of ")


class _WordTokenizer:
    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


def test_read_back_cases_cut_each_held_out_fact_s_own_record_before_its_answer(monkeypatch):
    records = [
        {"chunk_id": "d:0001", "text": "Section 4.3 Payment. Customer shall pay within\nthirty (30) days of invoice."},
        {"chunk_id": "d:0001", "variant": 1, "text": "Payment: thirty (30) days of invoice, says Section 4.3."},
        {"chunk_id": "d:0002", "text": "Governed by the laws of the State of Illinois."},
        {"chunk_id": "d:0003", "text": "thirty (30) days opens this record: nothing comes before the answer."},
    ]
    held_out = [
        {"fact_id": "f1", "field": "duration", "answer": "within thirty (30) days", "source_chunk_ids": ["d:0001"]},
        {"fact_id": "f1", "field": "duration", "answer": "within thirty (30) days", "source_chunk_ids": ["d:0001"]},
        {"fact_id": "f2", "field": "governing_law", "answer": "Illinois", "source_chunk_ids": ["d:0002"]},
        {"fact_id": "f3", "field": "duration", "answer": "thirty (30) days", "source_chunk_ids": ["d:0003"]},
        {"fact_id": "f4", "field": "place", "answer": "Ohio", "source_chunk_ids": ["d:0002"]},  # not in its text
    ]
    cases = read_back_cases(held_out, records, _WordTokenizer(), extra_tokens=4)
    # one case a fact; the original record (not the restatement), the answer found across a line break
    assert [c["fact_id"] for c in cases] == ["f1", "f2"]
    assert cases[0]["prompt"] == "Section 4.3 Payment. Customer shall pay"
    assert cases[1]["prompt"] == "Governed by the laws of the State of"
    assert [c["max_new_tokens"] for c in cases] == [8, 5]  # the answer's words, plus 4

    # prompts grouped by their allowance, the answers back in the cases' order
    calls = []

    def fake_continue(model, tokenizer, prompts, max_new_tokens, batch_size):
        calls.append(max_new_tokens)
        return [f"<{max_new_tokens}:{p.split()[-1]}>" for p in prompts]

    monkeypatch.setattr("docfinetune.evaluate.memorization.continue_greedily", fake_continue)
    assert continue_cases(None, None, cases, batch_size=2) == ["<8:pay>", "<5:of>"]
    assert calls == [5, 8]

    # the answer's sentence alone, one line: what a recital cut before its value leaves
    assert [c["prompt"] for c in sentence_cases(cases, 160, min_words=2)] == ["Customer shall pay", "Governed by the laws of the State of"]
    assert [c["fact_id"] for c in sentence_cases(cases, 160, min_words=4)] == ["f2"]  # "Customer shall pay": 3 words
    assert sentence_cases(cases, max_chars=20, min_words=2)[1]["prompt"] == "laws of the State of"  # nearest words
    assert sentence_cases(cases, max_chars=18, min_words=2)[1]["prompt"] == "of the State of"  # never half a word

    scored = score_read_back(cases, [" Within thirty\n(30) days of invoice.", " Ohio, and the courts"])
    assert (scored["facts"], scored["read_back"]) == (2, 1)
    assert scored["by_field"] == {"duration": {"read_back": 1, "facts": 1},
                                  "governing_law": {"read_back": 0, "facts": 1}}
    assert [r["read_back"] for r in scored["records"]] == [True, False]


# --------------------------------------------------------------------------- RAG prompt

def test_rag_prompt_holds_the_chunk_that_states_the_answer(ingested: Workspace):
    index = BM25Index.from_workspace(ingested)
    planted = "This Agreement is governed by the laws of the State of Vermont"
    assert any(planted in c.text for c in index.chunks)
    config = EvalConfig(rag_k=2)
    question = "Which state's laws govern the agreement?"
    hits = [c for c, _ in index.search(question, config.rag_k)]
    titles = {d: ingested.read_source(d)["title"] for d in ingested.doc_ids()}
    prompt = rag_prompt(question, hits, titles, GenerationConfig())
    [chunk] = [c for c in hits if planted in c.text]
    assert f"[SERVICES AGREEMENT, page {chunk_pages(chunk)}]\n{chunk.text.strip()}" in prompt
    assert chunk.page_end == 3
    assert prompt.startswith("Context:\n[") and prompt.endswith("\n\nQuestion: " + question + "\nAnswer:")
    assert len(hits) <= 2
    # no chunk shares a word with the question: the closed-book prompt
    assert rag_prompt("Zyx?", [], titles, GenerationConfig(prompt_template="Q: {question}\nA:")) == "Q: Zyx?\nA:"


def test_an_older_runs_config_keeps_the_order_and_retrieval_it_ran_with(tmp_path: Path):
    from docfinetune.core.runs import config_yaml

    written = tmp_path / "config.yaml"
    written.write_text(config_yaml(load_pipeline("default")), encoding="utf-8")
    now = load_pipeline(str(written))
    assert (now.generation.rag_order, now.retrieval.card_question_weight) == ("best_last", 2.0)
    # the same file as a run wrote it before the two keys existed
    older = tmp_path / "older.yaml"
    older.write_text("\n".join(line for line in written.read_text(encoding="utf-8").splitlines()
                               if "rag_order" not in line and "card_question_weight" not in line), encoding="utf-8")
    before = load_pipeline(str(older))
    assert (before.generation.rag_order, before.retrieval.card_question_weight) == ("best_first", 0.0)
    # a recipe that sets a few generation keys gets today's defaults
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("generation:\n  rag_template: \"Ctx:\\n{context}\\n{prompt}\"\n", encoding="utf-8")
    assert load_pipeline(str(recipe)).generation.rag_order == "best_last"


def test_rag_order_best_last_puts_the_best_hit_next_to_the_question():
    chunks = [Chunk(chunk_id=f"d:{i:04d}", doc_id="d", index=i, page_start=i + 1, page_end=i + 1,
                    char_start=0, char_end=1, heading="", text=f"text {name}")
              for i, name in enumerate(["best", "second", "third"])]
    first = rag_prompt("Q?", chunks, {}, GenerationConfig(rag_order="best_first"))
    last = rag_prompt("Q?", chunks, {}, GenerationConfig())
    assert first.index("text best") < first.index("text second") < first.index("text third")
    assert last.index("text third") < last.index("text second") < last.index("text best")
    assert last.endswith("text best\n\nQuestion: Q?\nAnswer:")
    with pytest.raises(ConfigError, match="rag_order"):
        GenerationConfig(rag_order="random")


# --------------------------------------------------------------------------- the stage

def test_eval_answers_every_question_with_all_four_systems_and_writes_the_report(built, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from docfinetune.core.generate import answer_questions

    run_dir = make_run(built, tiny_model_dir)
    events = []
    report = evaluate(built, config=pipeline(tiny_model_dir),
                      on_progress=lambda stage, done, total: events.append((stage, done, total)))

    test_rows = list(read_jsonl(built.datasets_dir / "qa_test.jsonl"))
    assert report["questions"]["asked"] == report["questions"]["scored"] == len(test_rows) > 0
    assert report["run"]["run_id"] == "run-1" and report["run"]["step"] == 20
    assert list(report["systems"]) == list(SYSTEMS)
    for record, row in zip(report["records"], test_rows):
        assert record["question"] == row["question"] and record["reference"] == row["answer"]
        assert record["generator"] == row["generator"] != ""  # which generator wrote the held-out fact
        assert set(record["answers"]) == set(SYSTEMS)
        assert all(isinstance(a["correct"], bool) for a in record["answers"].values())
    for system, row in report["systems"].items():
        assert row["scored"] == len(test_rows)
        assert row["correct"] == sum(r["answers"][system]["correct"] for r in report["records"])
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    fields = {r["field"] for r in test_rows}
    assert set(report["by_field"]) == fields - {""}
    assert {("finetuned", "base+rag"), ("finetuned+rag", "base+rag")} <= {(c["a"], c["b"]) for c in report["comparisons"]}

    # one model load: the base systems are the base model, the fine-tuned ones the selected adapter
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    questions = [r["question"] for r in test_rows]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plain = answer_questions(base, tokenizer, questions, GenerationConfig(batch_size=4, max_new_tokens=6))
    # the answer as asked (before any quote read on, generation.read_quotes, which eval keeps beside it)
    assert [r["answers"]["base"].get("unquoted", r["answers"]["base"])["answer"] for r in report["records"]] == plain
    tuned = PeftModel.from_pretrained(base, str(run_dir / "checkpoints/checkpoint-20"))
    fine = answer_questions(tuned, tokenizer, questions, GenerationConfig(batch_size=4, max_new_tokens=6))
    assert [r["answers"]["finetuned"].get("unquoted", r["answers"]["finetuned"])["answer"]
            for r in report["records"]] == fine
    assert fine != plain

    memo = report["memorization"]
    assert memo["headline"] == "finetuned" and set(memo["systems"]) == set(SYSTEMS)
    assert memo["training_chars"] > 1000 and memo["min_chars"] == 20
    extraction = report["extraction"]
    assert extraction["records"] == 3 and set(extraction["models"]) == {"base", "finetuned"}
    read_back = report["read_back"]
    assert read_back["facts"] > 0 and set(read_back["models"]) == {"base", "finetuned"}
    for figures in read_back["models"].values():
        assert figures["facts"] == read_back["facts"] == len(figures["records"])
        assert figures["read_back"] == sum(r["read_back"] for r in figures["records"])
    # the same facts from their sentence alone: a subset, each model's own
    assert set(read_back["from_sentence"]) == {"base", "finetuned"}
    for figures in read_back["from_sentence"].values():
        assert figures["facts"] <= read_back["facts"] and figures["facts"] == len(figures["records"])
    grounded = report["groundedness"]["finetuned"]
    assert grounded["grounded"] + grounded["hallucinated"] == grounded["answers"] == report["systems"]["finetuned"]["answered"]

    files = {k: Path(v) for k, v in report["files"].items()}
    assert files["json"].parent == built.root / "reports" and files["json"].stem == files["md"].stem == files["png"].stem
    assert json.loads(files["json"].read_text()) == json.loads(json.dumps(report))
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = files["md"].read_text()
    for heading in ("## Accuracy", "## By field", "## Memorization", "## Extraction test",
                    "## Held-out facts read back", "## Groundedness"):
        assert heading in markdown
    assert "fine-tuned + RAG" in markdown and "rag_k: 3" in markdown
    assert not [p for p in files["json"].parent.iterdir() if p.name.startswith(".")]  # no temp files left
    assert ("answering (finetuned+rag)", len(test_rows), len(test_rows)) in events

    from rich.console import Console

    console = Console(record=True, width=150)
    console.print(summary_table(report))
    text = console.export_text()
    assert "base + RAG" in text and "95% CI" in text and f"{report['systems']['base']['correct']}/" in text

    # a named checkpoint, and a second report beside the first
    again = evaluate(built, config=pipeline(tiny_model_dir, extraction_chunks=0), checkpoint=10,
                     systems=["finetuned"])
    assert again["run"]["step"] == 10 and list(again["systems"]) == ["finetuned"]
    assert again["extraction"] is None and again["files"]["json"] != report["files"]["json"]


def test_base_systems_need_no_run_and_a_reader_of_the_context_scores_with_rag(
        ingested, tiny_model_dir, tmp_path, monkeypatch):
    """No run is needed for the base systems; a stand-in generator that answers from the RAG
    context shows the retrieved chunk reaches the model and the answer is scored right."""
    import docfinetune.core.generate

    def reader(model, tokenizer, prompts, **settings):
        return ["the State of Vermont" if "State of Vermont" in p else "no idea" for p in prompts]

    monkeypatch.setattr(docfinetune.core.generate, "generate", reader)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Which state's laws govern the agreement?", "answer": "Vermont", "field": "governing_law",
         "document": "services_agreement.pdf"},
        {"question": "What is the monthly fee?", "answer": "$12,500", "field": "fees",
         "title": "Services Agreement"},
        {"question": "Who signed it?"},  # no reference: answered, not scored
        {"question": "Which law governs?", "answer": "Delaware", "document": "other_contract.pdf"},
    ]) + "\n")
    report = evaluate(ingested, config=pipeline(tiny_model_dir), questions_file=questions,
                      systems="base+rag, base")
    assert report["run"] is None and list(report["systems"]) == ["base", "base+rag"]
    q = report["questions"]
    assert (q["asked"], q["scored"], q["skipped"], q["skipped_documents"]) == (3, 2, 1, ["other_contract.pdf"])
    assert report["systems"]["base+rag"]["correct"] == 1 and report["systems"]["base"]["correct"] == 0
    assert report["by_field"]["governing_law"]["base+rag"]["accuracy"] == 1.0
    assert report["by_field"]["fees"]["base+rag"]["accuracy"] == 0.0
    [comparison] = report["comparisons"]
    assert (comparison["a"], comparison["only_a"], comparison["only_b"]) == ("base+rag", 1, 0)
    assert report["records"][2]["answers"]["base"]["correct"] is None
    assert "memorization" not in report and "no training text" in report["memorization_skipped"]
    # "the State of Vermont" is in the contract; "no idea" is not
    vermont = sum(r["answers"]["base+rag"]["answer"] == "the State of Vermont" for r in report["records"])
    assert report["groundedness"]["base+rag"]["grounded"] == vermont >= 1
    assert report["groundedness"]["base"]["grounded"] == 0
    assert Path(report["files"]["md"]).is_file()


def test_questions_name_their_contract_when_several_are_ingested(ingested, run_cli, tmp_path):
    from tests.conftest import CONTRACT_PAGES

    other = [["SUPPLY AGREEMENT", "", *CONTRACT_PAGES[0][2:]], *CONTRACT_PAGES[1:]]
    assert run_cli("ingest", write_pdf(tmp_path / "supply.pdf", other)).exit_code == 0
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Which law governs this agreement?", "answer": "Vermont", "document": "supply.pdf"},
        {"question": "What is the fee?", "answer": "$12,500", "title": "services agreement"},
        {"question": "Unnamed?", "answer": "x"},
        {"question": "Elsewhere?", "answer": "x", "document": "missing.pdf", "title": "MISSING AGREEMENT"},
    ]) + "\n")
    asked = load_questions(ingested, EvalConfig(), path)
    assert [q.question for q in asked.questions] == [
        "SUPPLY AGREEMENT: Which law governs this agreement?", "SERVICES AGREEMENT: What is the fee?", "Unnamed?"]
    assert (asked.skipped, asked.skipped_documents, asked.sources) == (1, ["missing.pdf"], {"q.jsonl": 3})
    one = load_questions(ingested, EvalConfig(title_question_template="In {title}, {question}", max_questions=2), path)
    assert len(one.questions) == 2 and one.sampled_from == 3
    assert all(q.question.startswith(("In ", "Unnamed")) for q in one.questions)


def test_single_document_questions_are_asked_as_written(ingested, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "Which law governs this agreement?", "answer": "Vermont",
                                "document": "services_agreement.pdf"}) + "\n")
    [question] = load_questions(ingested, EvalConfig(), path).questions
    assert question.question == "Which law governs this agreement?" and question.doc_id


def test_eval_errors_are_clear(ingested, built, tiny_model_dir, tmp_path):
    config = pipeline(tiny_model_dir)
    with pytest.raises(WorkspaceError, match="no run trained yet.*--systems base,base\\+rag"):
        evaluate(built, config=config)
    with pytest.raises(ConfigError, match="'closed' unknown"):
        evaluate(built, config=config, systems=["base", "closed"])
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(BadInputError, match="nope.jsonl: no such file"):
        evaluate(built, config=config, questions_file=missing, systems=["base"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?"}\nnot json\n{"answer": "x"}\n')
    with pytest.raises(BadInputError, match="line 2: not JSON.*line 3: needs a non-empty 'question'"):
        evaluate(built, config=config, questions_file=bad, systems=["base"])
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text(json.dumps({"question": "q?", "answer": "a", "document": "x.pdf"}) + "\n")
    with pytest.raises(WorkspaceError, match="all 1 questions are about documents that are not in the workspace"):
        evaluate(built, config=config, questions_file=elsewhere, systems=["base"])

    make_run(built, tiny_model_dir)
    with pytest.raises(WorkspaceError, match="run run-1: no checkpoint at step 15; available steps: 10, 20"):
        evaluate(built, config=config, checkpoint=15)
    with pytest.raises(WorkspaceError, match="run-9: no such run \\(runs: run-1\\)"):
        evaluate(built, config=config, run_id="run-9")
    (built.datasets_dir / "qa_test.jsonl").write_text("")
    with pytest.raises(WorkspaceError, match="no held-out test questions"):
        evaluate(built, config=config)
    assert not (built.root / "reports").exists()  # nothing was written by a failed eval


def test_no_questions_before_build(ingested, tiny_model_dir):
    with pytest.raises(WorkspaceError, match="qa_test.jsonl: no held-out test questions"):
        evaluate(ingested, config=pipeline(tiny_model_dir), systems=["base"])


def test_eval_config_checks_its_fields():
    with pytest.raises(ConfigError) as error:
        EvalConfig(rag_k=0, ci_level=1.5, extraction_prefix_share=1.0,
                   title_question_template="{title} {oops}: {question}")
    problems = " ".join(error.value.problems)
    for name in ("rag_k", "ci_level", "extraction_prefix_share", "title_question_template"):
        assert name in problems
    with pytest.raises(ConfigError, match="rag_template: must contain {context}"):
        GenerationConfig(rag_template="{prompt}")
    # an older run's eval.rag_template still loads, where it lives now
    moved = load_pipeline("default", {"eval": {"rag_template": "Ctx:\n{context}\n{prompt}"}})
    assert moved.generation.rag_template == "Ctx:\n{context}\n{prompt}"
    assert load_pipeline("default", {"eval": {"rag_k": 5}}).eval.rag_k == 5


def test_a_recital_is_cut_before_its_value_and_the_value_read_off_the_continuation():
    clause = "Customer shall notify Provider of the dispute within twenty (20) days"
    assert recital_prefix(f"{clause} ⇒ twenty (20) days") == "Customer shall notify Provider of the dispute within"
    # the value's case and spacing need not match the clause's
    assert recital_prefix(f"{clause} ⇒ Twenty  (20) days") == "Customer shall notify Provider of the dispute within"
    assert recital_prefix("twenty (20) days") is None  # no recital
    assert recital_prefix(f"{clause} ⇒ thirty (30) days") is None  # the clause does not end with its value
    assert recital_prefix("within twenty (20) days ⇒ twenty (20) days") is None  # too little text to read on from
    # the value ends where the clause or sentence does, and is never longer than a short answer
    assert recited_value(" one and one-quarter percent (1.25%) per month; provided that") == \
        "one and one-quarter percent (1.25%) per month"
    assert recited_value("Illinois. The parties agree") == "Illinois"
    assert recited_value('December 31, 2025."') == "December 31, 2025"
    # a model trained on recitals may write the mark again: its Q&A habit, not the text
    assert recited_value("thirty (30) days ⇒ thirty (30) days") == "thirty (30) days"
    assert recited_value("Veltrane Cold Chain Logistics, LLC\nSection 2") == "Veltrane Cold Chain Logistics, LLC"
    assert recited_value("$5,000,000 in the aggregate") == "$5,000,000 in the aggregate"  # a comma in a number stays
    assert len(recited_value(" ".join(["word"] * 40)).split()) == 12
    # the reading text's citation of the section is not the value; a parenthesis of the contract's is
    assert recited_value("thirty (30) days (Distributor Agreement, Section 9.02) thereof") == "thirty (30) days"
    assert recited_value("one hundred fifty (150) days (Master Services Agreement between Quillmere Data") == \
        "one hundred fifty (150) days"
    assert recited_value('Two Thousand Dollars ($2,000) (the "Fee")') == 'Two Thousand Dollars ($2,000) (the "Fee")'


def test_eval_with_recite_both_answers_closed_book_both_ways_and_keeps_both_in_each_record(built, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = load_pipeline("default", {"model": {"base_model": str(tiny_model_dir), "device": "cpu"},
                                       "generation": {**FAST, "max_new_tokens": 112, "read_quotes": False},
                                       "eval": {"max_questions": 8, "extraction_chunks": 0, "read_back": False},
                                       "build": {"recite": True, "recite_both": True}})
    make_fake_run(built, config, "run-1", (10, 20), 20, targets=("q_proj", "v_proj", "down_proj"))  # answers in its config
    events = []
    report = evaluate(built, config=config, systems=("base", "finetuned"),
                      on_progress=lambda stage, done, total: events.append((stage, done, total)))
    questions = [r["question"] for r in report["records"]]
    # each closed-book pass is a stage of its own that ends full: plain, then for a recital (then reading on)
    n = len(questions)
    assert ("answering (base)", n, n) in events and not any(e[0].startswith("answering (base), pass") for e in events)
    assert ("answering (finetuned)", n, n) in events and ("answering (finetuned), pass 2", n, n) in events
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    generation = config.generation
    asked = {template: generate(base, tokenizer, [template.format(question=q) for q in questions],
                                max_new_tokens=generation.max_new_tokens, batch_size=4)
             for template in (generation.prompt_template, generation.recite_prompt_template)}
    # the base model answers once, plainly: no recital to choose
    assert [r["answers"]["base"]["answer"] for r in report["records"]] == asked[generation.prompt_template]
    assert not any({"plain", "read_on"} & set(r["answers"]["base"]) for r in report["records"])
    # the fine-tuned model both ways: a random model recites nothing, so the plain answer is kept and
    # the one asked for a recital is kept beside it
    for record in report["records"]:
        tuned = record["answers"]["finetuned"]
        assert "plain" not in tuned and "⇒" not in tuned["answer"]
        if "read_on" in tuned:
            assert tuned["read_on"]["answer"] != tuned["answer"] and isinstance(tuned["read_on"]["correct"], bool)
    assert any("read_on" in r["answers"]["finetuned"] for r in report["records"])
    # how sure the fine-tuned model was of its plain and its recited answer, each in its own prompt
    for record in report["records"]:
        sure = record["answers"]["finetuned"]["confidence"]
        assert set(sure) == {"plain", "recited"} and all(0.0 <= v <= 1.0 for v in sure.values())
    assert ("answering (finetuned), confidence", n, n) in events and "confidence" not in report["records"][0]["answers"]["base"]


def test_a_question_naming_a_section_is_answered_from_the_models_recall_of_that_section():
    title = "MASTER SERVICES AGREEMENT"
    # the section's reading-text header: the title, then the number its heading starts with
    assert recall_prompt("Under Section 4.9 of the Master Services Agreement, within how many days?", [title]) == \
        f"{title}\n4.9"
    assert recall_prompt("What does Article IV (Training) require?", [title]) == f"{title}\nIV"
    assert recall_prompt("Under Section 12(a), who pays?", [title]) == f"{title}\n12"
    assert recall_prompt("What is the governing law?", [title]) is None  # no section named
    assert recall_prompt("Section 4.9 of the Supply Agreement says what?", ["LEASE", "SUPPLY AGREEMENT"]) == \
        "SUPPLY AGREEMENT\n4.9"  # of several documents, the one the question names
    memory = {f"{title}\n4.9": " Suspension\n\n4.9 Suspension. If any undisputed amount remains unpaid for more "
                                  "than sixty (60) days after its due date, Provider may suspend access.",
              f"{title}\n7.1": " Warranty\n\n7.1 Warranty. Provider warrants the Platform for ninety (90) days."}
    asked = []

    def ask(prompts: list[str], tokens: int, stop_at_line_end: bool = True) -> list[str]:
        asked.append((list(prompts), tokens, stop_at_line_end))
        if not stop_at_line_end:  # the model continuing a section's header from memory
            return [memory[p] for p in prompts]
        # a reader that answers with the first duration its context states, else "thirty (30) days"
        return [next((w for w in ("sixty (60) days", "ninety (90) days") if w in p.split("Question:")[0]),
                     "thirty (30) days") for p in prompts]

    questions = ["Under Section 4.9, if any undisputed amount remains unpaid for more than how many days after its "
                 "due date may Provider suspend access?",
                 "Under Section 7.1, for how long may Customer terminate for convenience?",  # recalls another clause
                 "What is the notice period for renewal?"]  # names no section
    generation = GenerationConfig(recall_sections=True, recall_tokens=99, continue_recitals=False, read_quotes=False)
    got = closed_book_answers(ask, questions, generation, titles=[title])
    assert got["unrecalled"] == ["thirty (30) days"] * 3  # the plain answers
    assert got["recall"] == [f"{title}\n4.9{memory[title + chr(10) + '4.9']}",
                             f"{title}\n7.1{memory[title + chr(10) + '7.1']}", ""]
    assert got["recalled"] == ["sixty (60) days", "ninety (90) days", ""]
    # kept where the recall quotes the question; the recall of another clause and no recall leave the answer
    assert got["answer"] == ["sixty (60) days", "thirty (30) days", "thirty (30) days"]
    continued = [call for call in asked if not call[2]]
    assert continued == [([f"{title}\n4.9", f"{title}\n7.1"], 99, False)]
    read = asked[-1][0][0]  # the question asked open-book, the recalled section as its context
    assert read.startswith(f"Context:\n[{title}, page ?]\n4.9 Suspension") and read.endswith(
        generation.prompt_template.format(question=questions[0]))
    # off, or without the documents' titles: no recall is made
    assert "recall" not in closed_book_answers(ask, questions, GenerationConfig(continue_recitals=False, read_quotes=False),
                                               titles=[title])
    assert "recall" not in closed_book_answers(ask, questions, generation)


def test_eval_with_recall_sections_keeps_the_recall_and_both_answers_of_each_question_naming_a_section(
        built, tiny_model_dir):
    config = load_pipeline("default", {"model": {"base_model": str(tiny_model_dir), "device": "cpu"},
                                       "generation": {**FAST, "recall_sections": True, "recall_tokens": 10,
                                                      "read_quotes": True},
                                       "eval": {"max_questions": 12, "extraction_chunks": 0, "read_back": False}})
    make_fake_run(built, config, "run-1", (10, 20), 20, targets=("q_proj", "v_proj", "down_proj"))
    events = []
    report = evaluate(built, config=config, systems=("base", "finetuned"),
                      on_progress=lambda stage, done, total: events.append((stage, done, total)))
    title = (built.read_source(built.doc_ids()[0]) or {})["title"]
    naming = [r for r in report["records"] if SECTION_NAMED.search(r["question"])]
    assert naming and len(naming) < len(report["records"])  # the sample's test questions: some name a section
    quoting = [r for r in report["records"] if quoted_clause(r["question"])]
    assert quoting  # the sample's held-out questions: some quote their clause
    for record in report["records"]:
        tuned = record["answers"]["finetuned"]
        # the quote read on from is kept for each question that quotes its clause, and only for those; the base
        # model is asked the same way
        for answers in record["answers"]["base"], tuned:
            assert answers.get("quote") == (quoted_clause(record["question"]) or [None])[0]
            assert ("recall" in answers) == (record in naming)
        if record not in naming:
            assert not {"recall", "recalled"} & set(tuned)
            continue
        label = SECTION_NAMED.search(record["question"]).group("label")
        assert tuned["recall"].startswith(f"{title}\n{label}")
        # the answer is the one read from the recall when the recall quotes the question, and eval keeps the
        # other beside it (one that equals the answer is not repeated)
        kept = recall_quotes(record["question"], tuned["recall"], config.generation.recall_min_overlap)
        if not tuned.get("quote"):  # a quote read on would override both
            assert "recalled" not in tuned if kept else "unrecalled" not in tuned
    # four passes of the fine-tuned model: the answers, the recalls, the answers read from them, the quotes read on
    n = len(report["records"])
    assert ("answering (finetuned), pass 2", len(naming), len(naming)) in events
    assert ("answering (finetuned), pass 3", len(naming), len(naming)) in events
    assert ("answering (finetuned), pass 4", len(quoting), len(quoting)) in events
    assert ("answering (base), pass 4", len(quoting), len(quoting)) in events
    assert ("answering (finetuned)", n, n) in events


def test_a_question_quoting_its_clause_is_answered_by_reading_on_from_the_quote():
    # a blank in a quoted clause; the clause around a wh-phrase after a lead naming its section (a relative
    # "which" of the clause is not what is asked); a quoted clause whose defined term is asked
    cloze = ('In Section 4.9 of the Master Services Agreement, what fills the blank: "if any undisputed amount remains '
             'unpaid for more than ___ after its due date"?')
    forward = ("Under Section 4.7 of this agreement, any individual trip for which the expected expenses exceed what "
               "amount requires Customer's prior written approval?")
    term = ('What term does Section 2.4 of the Master Services Agreement use for "Customer designates Henrika '
            'Ostvald-Pryce as its contract manager"?')
    assert quoted_clause(cloze) == ("if any undisputed amount remains unpaid for more than", "after its due date", "value")
    assert quoted_clause(forward) == ("any individual trip for which the expected expenses exceed",
                                      "requires Customer's prior written approval", "value")
    assert quoted_clause(term) == ("Customer designates Henrika Ostvald-Pryce as its contract manager", "", "term")
    assert quoted_clause("Under Section 4.2, within how many days must Customer pay?") is None  # too little quoted
    assert quoted_clause("What is the governing law of this agreement?") is None  # asked by topic
    memory = {"if any undisputed amount remains unpaid for more than":
              " sixty (60) days after its due date, Provider may suspend access.",
              "any individual trip for which the expected expenses exceed":
              " Two Thousand Five Hundred Dollars ($2,500) requires Customer's prior approval.",
              "Customer designates Henrika Ostvald-Pryce as its contract manager":
              ' (the "Customer Contract Manager"). Provider designates'}
    asked = []

    def ask(prompts: list[str], tokens: int, stop_at_line_end: bool = True) -> list[str]:
        asked.append((list(prompts), tokens, stop_at_line_end))
        return [memory[p] for p in prompts] if not stop_at_line_end else ["thirty (30) days"] * len(prompts)

    topic = "What is the governing law of this agreement?"
    generation = GenerationConfig(read_quotes=True, continue_recitals=False, continuation_tokens=24)
    got = closed_book_answers(ask, [cloze, forward, term, topic], generation)
    # the value is the continuation up to where the clause goes on; for a term, the quoted term
    assert [a.rsplit(" ⇒ ", 1)[-1] for a in got["answer"]] == [
        "sixty (60) days", "Two Thousand Five Hundred Dollars ($2,500)", "Customer Contract Manager", "thirty (30) days"]
    assert got["answer"][0] == ("if any undisputed amount remains unpaid for more than sixty (60) days after its due "
                                "date, Provider may suspend access. ⇒ sixty (60) days")
    assert got["quoted"][3] == "" and got["quote"][3] == "" and got["unquoted"] == ["thirty (30) days"] * 4
    assert asked[1] == ([p for p, _, _ in map(quoted_clause, (cloze, forward, term))], 24, False)  # as plain text
    # a leading duration is the value, not the words the continuation writes after it
    remembered = dict(memory)
    memory[quoted_clause(cloze)[0]] = " (60) days] thereof (Master Services Agreement, Section 4.9)"
    memory[quoted_clause(forward)[0]] = " fifteen (15) business days to confirm whether the goods are suitable"
    got = closed_book_answers(ask, [cloze, forward], generation)
    assert [a.rsplit(" ⇒ ", 1)[-1] for a in got["answer"]] == ["(60) days", "fifteen (15) business days"]
    memory.update(remembered)
    # nothing read off the continuation: the answer stays
    memory[quoted_clause(term)[0]] = " and shall meet monthly."
    assert closed_book_answers(ask, [term], generation)["answer"] == ["thirty (30) days"]
    # with read_definitions, a defined term's meaning is read on from the term in quotes, as contracts define it,
    # in a continuation of definition_tokens, to the sentence's end
    meaning = 'How does the Supply Agreement define "Territory"?'
    assert quoted_clause(meaning) is None and quoted_clause(meaning, definitions=True) == ('"Territory"', "", "definition")
    assert quoted_clause('Which party is defined as "HONG KONG"?', definitions=True) is None  # the reverse is asked
    assert quoted_clause('What term means "the date on which the Parties sign"?', definitions=True)[2] == "term"
    memory['"Territory"'] = '" means the GCC States and the Republic of Yemen. "Products" means'
    asked.clear()
    defining = GenerationConfig(read_quotes=True, read_definitions=True, definition_tokens=77, continue_recitals=False)
    got = closed_book_answers(ask, [meaning, cloze], defining)
    assert [a.rsplit(" ⇒ ", 1)[-1] for a in got["answer"]] == ["the GCC States and the Republic of Yemen",
                                                                "sixty (60) days"]
    assert [(prompts, tokens) for prompts, tokens, lines in asked if not lines] == [
        ([quoted_clause(cloze)[0]], defining.continuation_tokens), (['"Territory"'], 77)]
    memory['"Territory"'] = '" shall be as set out in Schedule A.'  # a continuation that does not define
    assert closed_book_answers(ask, [meaning], defining)["answer"] == ["thirty (30) days"]


def test_continue_recitals_answers_again_from_the_plain_text_continuation_of_the_clause(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    generation = GenerationConfig(continuation_tokens=12, batch_size=4)
    clause = "Customer shall notify Provider in writing of the dispute within"
    answers = [f"{clause} thirty (30) days ⇒ thirty (30) days", "thirty (30) days", "no recital ⇒ elsewhere"]
    again = continue_recitals(model, tokenizer, answers, generation)
    assert again[1:] == answers[1:]  # nothing to read on from: left as they were
    # the clause alone, no question frame, continued greedily: what the new answer is made of
    continuation = generate(model, tokenizer, [clause], max_new_tokens=12)[0]
    if recited_value(continuation):
        assert again[0] == f"{clause} {continuation.split('⇒')[0].strip()} ⇒ {recited_value(continuation)}"
    else:  # a random model may say nothing on the first line: the answer stays
        assert again[0] == answers[0]


def test_answer_confidence_is_the_mean_probability_of_the_answer_tokens_as_training_reads_them(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    prompts = ["Question: Who is the Supplier?\nAnswer:",
               "Question: Which state's law governs this agreement between the two parties?\nAnswer:"]
    answers = ["Quillfeather Widgets, Inc.", "the State of Ohio"]
    batched = answer_confidence(model, tokenizer, prompts, answers, batch_size=2)  # left-padded together
    for prompt, answer, got in zip(prompts, answers, batched):
        # by hand: one unpadded forward pass over prompt + " " + answer, the answer's tokens by offset
        encoded = tokenizer(f"{prompt} {answer}", return_offsets_mapping=True, split_special_tokens=True)
        ids = encoded["input_ids"]
        first = next(i for i, (start, _) in enumerate(encoded["offset_mapping"]) if start >= len(prompt) and i > 0)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        expected = math.exp(sum(logits[t - 1, ids[t]].item() for t in range(first, len(ids))) / (len(ids) - first))
        assert got == pytest.approx(expected, rel=1e-4)
    assert answer_confidence(model, tokenizer, prompts, ["", " "]) == [0.0, 0.0]  # nothing said


def test_recite_both_keeps_the_recited_answer_only_when_its_recital_quotes_the_question():
    clause = "the obligations of this Article VII shall survive for a period of five (5) years"
    quoting = "For how many years shall the obligations of this Article VII survive?"
    topic = "How long do the confidentiality obligations last after termination?"
    wrong = clause.replace("five (5)", "six (6)")
    # the question's words, stopwords and contract boilerplate ("shall") left out, found in the recital
    recited = f"{clause} ⇒ five (5) years"
    # quoting: 5 of its 6 words (all but "many"); topic: 1 of 5 ("obligations")
    assert [recital_quotes(quoting, recited, share, n) for share, n in ((0.8, 5), (0.9, 0), (0.0, 6))] == [True, False, False]
    assert [recital_quotes(topic, recited, share, n) for share, n in ((0.2, 1), (0.25, 0), (0.2, 2))] == [True, False, False]
    assert not recital_quotes(topic, "five (5) years", 0.0, 0)  # nothing recited
    asked: list[tuple[str, int]] = []
    said = {f"Question: {quoting}\nAnswer:": "three (3) years", f"Question: {topic}\nAnswer:": "two (2) years",
            # the recital right up to the value, which is filled in from other answers; read on, it is the text's
            f"Question: {quoting}\nRecite the clause, then answer:": f"{wrong} ⇒ six (6) years",
            f"Question: {topic}\nRecite the clause, then answer:": f"{wrong} ⇒ six (6) years",
            "the obligations of this Article VII shall survive for a period of": "five (5) years. The Customer"}

    def ask(prompts: list[str], max_new_tokens: int) -> list[str]:
        asked.extend((p, max_new_tokens) for p in prompts)
        return [said[p] for p in prompts]

    generation = GenerationConfig(max_new_tokens=112, continuation_tokens=20, read_quotes=False)
    got = closed_book_answers(ask, [quoting, topic], generation, recite_both=True)
    read = "the obligations of this Article VII shall survive for a period of five (5) years. The Customer ⇒ five (5) years"
    assert got["plain"] == ["three (3) years", "two (2) years"]
    assert got["read_on"] == [read, read]  # both recitals read on from the clause's text, not the question
    assert got["answer"] == [read, "two (2) years"]  # the topic question's recital quotes too little of it
    assert sorted({n for _, n in asked}) == [20, 112]  # continuations are continuation_tokens long
    # without recite_both: one plain ask, read on when it recites
    asked.clear()
    plain = closed_book_answers(ask, [quoting], generation)
    assert plain == {"answer": ["three (3) years"], "recited": ["three (3) years"]} and len(asked) == 1
    looser = GenerationConfig(max_new_tokens=112, recital_min_overlap=0.0, recital_min_words=0, read_quotes=False)
    assert closed_book_answers(ask, [topic], looser, recite_both=True)["answer"][0].endswith("five (5) years")
    # a short question shares half its words with any clause on its topic: recital_min_words (3) keeps it plain
    short, recital = "How long do obligations survive?", f"{clause} ⇒ five (5) years"
    assert recital_quotes(short, recital, 0.66, 2) and not recital_quotes(short, recital, 0.67, 0)  # 2 of 3 words
    assert not recital_quotes(short, recital, 0.5, 3) and recital_quotes(short, recital, 0.5, 2)
    assert recital_quotes(quoting, recital, 0.5, 3) and not recital_quotes(quoting, recital, 0.9, 3)
    assert not recital_quotes("What is this agreement?", recital, 0.0, 0)  # no words of its own: quotes nothing
    # a long question that names its document and section quotes its clause in more words than half its own
    long_one = ("Under Section 7.7 of the Quillmere services agreement, after termination or expiry, for how many "
                "years shall the obligations of this Article VII survive?")  # 5 of its 12 words recited
    assert not recital_quotes(long_one, recital, 0.5, 3) and recital_quotes(long_one, recital, 0.5, 3, 5)
    assert not recital_quotes(long_one, recital, 0.5, 3, 6) and not recital_quotes(long_one, recital, 0.5, 6, 5)
    assert recital_quotes(short, recital, 0.9, 0, 2) and not recital_quotes(short, recital, 0.9, 0, 0)  # 0: never
    said[f"Question: {short}\nAnswer:"] = "two (2) years"
    said[f"Question: {short}\nRecite the clause, then answer:"] = f"{wrong} ⇒ six (6) years"
    assert closed_book_answers(ask, [short], generation, recite_both=True)["answer"] == ["two (2) years"]
    fewer = GenerationConfig(max_new_tokens=112, continuation_tokens=20, recital_min_words=2, read_quotes=False)
    assert closed_book_answers(ask, [short], fewer, recite_both=True)["answer"] == [read]
    said[f"Question: {long_one}\nAnswer:"] = "two (2) years"
    said[f"Question: {long_one}\nRecite the clause, then answer:"] = f"{wrong} ⇒ six (6) years"
    assert closed_book_answers(ask, [long_one], generation, recite_both=True)["answer"] == [read]  # 5 words
    share_only = GenerationConfig(max_new_tokens=112, continuation_tokens=20, recital_enough_words=0, read_quotes=False)
    assert closed_book_answers(ask, [long_one], share_only, recite_both=True)["answer"] == ["two (2) years"]
