"""The build stage: continued-pretraining text, rules Q&A, curation, split by fact, stats."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from datasets import load_dataset

from docfinetune.build.curate import curate
from docfinetune.build.split import check_no_leak, split_by_fact
from docfinetune.core.records import Chunk, QAPair
from tests.conftest import CONTRACT_PAGES, tree_snapshot, write_pdf


@pytest.fixture
def built(run_cli, contract_pdf: Path, workspace_dir: Path, tiny_model_dir: Path) -> Path:
    assert run_cli("ingest", contract_pdf).exit_code == 0
    result = run_cli("build", "--base-model", tiny_model_dir, "--split-val-fraction", "0.2",
                     "--split-test-fraction", "0.2")
    assert result.exit_code == 0, result.output + result.stderr
    return workspace_dir / "datasets"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_writes_loadable_datasets_with_stats(built: Path):
    cpt = load_dataset("json", data_files=str(built / "cpt.jsonl"), split="train")
    assert len(cpt) > 0 and cpt[0]["text"].startswith("SERVICES AGREEMENT")
    assert any("12. GOVERNING LAW\n\n" in t for t in cpt["text"])  # headed by its section
    splits = {name: rows(built / f"qa_{name}.jsonl") for name in ("train", "val", "test")}
    for name in splits:
        load_dataset("json", data_files=str(built / f"qa_{name}.jsonl"), split="train")
    stats = json.loads((built / "stats.json").read_text())
    assert stats["cpt"]["records"] == len(cpt) and stats["cpt"]["tokens"] > len(cpt)
    for name, pairs in splits.items():
        assert stats["splits"][name]["pairs"] == len(pairs)
        assert stats["splits"][name]["facts"] == len({p["fact_id"] for p in pairs})
    assert all(stats["splits"][n]["facts"] >= 1 for n in splits)
    everything = [p for pairs in splits.values() for p in pairs]
    assert set(everything[0]) == {"question", "answer", "fact_id", "source_chunk_ids", "doc_id",
                                  "generator", "field", "context_chunk_ids", "context_swap"}
    open_book = [p for p in splits["train"] if p["context_chunk_ids"]]  # copies of train rows (RAFT, default 0.5)
    assert open_book and stats["qa"]["open_book_rows"] == len(open_book)
    assert stats["qa"]["kept"] == len(everything) - len(open_book)
    assert stats["qa"]["generated"] == stats["qa"]["kept"] + sum(stats["qa"]["dropped"].values())
    law = [p for p in everything if p["field"] == "governing_law"]
    assert law and all("Vermont" in p["answer"] for p in law) and len(law) >= 3


def test_the_build_summary_counts_open_book_rows_twins_and_cards(built: Path):
    from rich.console import Console

    from docfinetune.display import datasets_table

    def shown(stats: dict) -> str:
        console = Console(record=True, width=300)
        console.print(datasets_table(stats))
        return " ".join(console.export_text().split())

    stats = json.loads((built / "stats.json").read_text())
    train = rows(built / "qa_train.jsonl")
    twins = sum(bool(p["context_swap"]) for p in train)
    assert twins > 0  # on by default (build.open_book_counterfactual_share 0.5)
    text = shown(stats)
    assert f"open-book {sum(bool(p['context_chunk_ids']) for p in train)} (counterfactual twins {twins})" in text
    assert f"fact cards {len(rows(built / 'cards.jsonl'))}" in text
    old = {**stats, "qa": {k: v for k, v in stats["qa"].items()  # a stats.json from before these counts
                           if k not in ("open_book_rows", "counterfactual_rows", "fact_cards", "held_out_fact_cards")}}
    assert "open-book" not in shown(old) and "dropped:" in shown(old)


def test_no_held_out_fact_has_a_phrasing_in_train_and_its_text_stays_in_cpt(built: Path):
    splits = {name: rows(built / f"qa_{name}.jsonl") for name in ("train", "val", "test")}
    train_facts = {p["fact_id"] for p in splits["train"]}
    train_questions = {p["question"].lower() for p in splits["train"]}
    cpt_chunks = {r["chunk_id"] for r in rows(built / "cpt.jsonl")}
    for name in ("val", "test"):
        for pair in splits[name]:
            assert pair["fact_id"] not in train_facts
            assert pair["question"].lower() not in train_questions
            assert set(pair["source_chunk_ids"]) <= cpt_chunks


def test_unchanged_inputs_skip_the_build_and_a_changed_document_rebuilds(built, run_cli, contract_pdf, tiny_model_dir):
    before = tree_snapshot(built)
    result = run_cli("build", "--base-model", tiny_model_dir, "--split-val-fraction", "0.2",
                     "--split-test-fraction", "0.2")
    assert result.exit_code == 0 and "up to date" in result.output
    assert tree_snapshot(built) == before
    write_pdf(contract_pdf, CONTRACT_PAGES[:2])
    assert run_cli("ingest", contract_pdf).exit_code == 0
    result = run_cli("build", "--base-model", tiny_model_dir)
    assert result.exit_code == 0 and "documents, settings or Q&A files changed" in result.stderr
    assert not any("Vermont" in p["answer"] for p in rows(built / "qa_train.jsonl"))


def test_own_qa_file_rows_join_the_split(built, run_cli, tiny_model_dir, tmp_path):
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"question": "Who signs for the Client?", "answer": "Mara Quint"}) + "\n"
                   + json.dumps({"instruction": "Name the county of the courts.", "input": "",
                                 "output": "Windham County"}) + "\n")
    result = run_cli("build", "--base-model", tiny_model_dir, "--qa-file", own)
    assert result.exit_code == 0, result.stderr
    everything = [p for n in ("train", "val", "test") for p in rows(built / f"qa_{n}.jsonl")]
    users = [p for p in everything if p["generator"] == "user"]
    assert {p["answer"] for p in users} == {"Mara Quint", "Windham County"}
    assert json.loads((built / "stats.json").read_text())["qa"]["user_rows"] == 2


def test_bad_qa_file_names_the_lines_and_changes_nothing(built, run_cli, tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "answer": "yes"}\nnot json\n{"question": "no answer"}\n')
    before = tree_snapshot(built)
    result = run_cli("build", "--base-model", tiny_model_dir, "--qa-file", bad, "--force")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert str(bad) in line and "line 2: not JSON" in line and "line 3: needs non-empty" in line
    assert tree_snapshot(built) == before


def test_build_without_documents_is_a_clear_error(run_cli, workspace_dir, tiny_model_dir):
    result = run_cli("build", "--base-model", tiny_model_dir)
    assert result.exit_code == 2 and "no documents ingested yet" in result.stderr
    assert not (workspace_dir / "datasets").exists()


def test_status_shows_the_datasets(built, run_cli):
    summary = json.loads(run_cli("status", "--json").output)
    assert summary["datasets"]["splits"]["train"]["pairs"] > 0


def _pair(fact: str, question: str, answer: str, chunk: str = "d:0000", doc: str = "d", **kw) -> QAPair:
    return QAPair(question, answer, fact, doc, [chunk], kw.pop("generator", "rules"), **kw)


def test_curation_drops_unsupported_long_and_near_duplicate_questions():
    chunks = [Chunk("d:0000", "d", 0, 1, 1, 0, 80, "", "The fee is thirty (30) dollars, paid on May 8, 2014.")]
    pairs = [
        _pair("f1", "What is the fee?", "30 dollars"),
        _pair("f1", "What is the fee ?", "30 dollars"),  # near-duplicate phrasing
        _pair("f2", "When is it paid?", "5/8/14"),  # supported after date normalization
        _pair("f3", "Who pays?", "Ferris Ltd"),  # not in the text
        _pair("f4", "x" * 400, "30 dollars"),
        _pair("f5", "When does it end?", "May 8, 2017", meta={"derived": True}),
    ]
    kept, dropped = curate(pairs, chunks, max_question_chars=300, max_answer_chars=300,
                           duplicate_similarity=0.95)
    assert [p.fact_id for p in kept] == ["f1", "f2", "f5"]
    assert dropped == {"near_duplicate": 1, "unsupported": 1, "too_long": 1}


def test_split_keeps_phrasings_together_is_seeded_and_checks_leaks():
    pairs = [_pair(f"d:f{i}", f"Question {i} phrasing {k}?", f"answer {i}") for i in range(30) for k in range(3)]
    first = split_by_fact(pairs, 0.2, 0.1, seed=7)
    assert first == split_by_fact(pairs, 0.2, 0.1, seed=7)
    assert {n: len({p.fact_id for p in v}) for n, v in first.items()} == {"train": 21, "val": 6, "test": 3}
    assert split_by_fact(pairs, 0.2, 0.1, seed=8)["test"] != first["test"]
    leaked = {"train": [pairs[0]], "val": [pairs[1]], "test": []}
    with pytest.raises(AssertionError, match="in both train and val"):
        check_no_leak(leaked)


def test_which_facts_are_held_out_follows_their_answers_not_their_ids_or_number():
    # Two recipes of one contract (one writes more facts, or numbers them otherwise) must hold out
    # the same facts, or comparing their answers compares which facts each held out.
    pairs = [_pair(f"d:coverage:{i}", f"Question {i}?", f"answer {i}") for i in range(40)]

    def held_out(rows):
        splits = split_by_fact(rows, 0.1, 0.1, seed=5)
        return {name: {p.answer for p in splits[name]} for name in ("val", "test")}

    first = held_out(pairs)
    renumbered = [_pair(f"d:rules:{39 - i}", p.question, p.answer) for i, p in enumerate(reversed(pairs))]
    assert held_out(renumbered) == first
    more = pairs + [_pair(f"d:coverage:{i}", f"Question {i}?", f"answer {i}") for i in range(40, 44)]
    second = held_out(more)
    old, new = first["val"] | first["test"], second["val"] | second["test"]
    # the quotas stay 4 and 4 (44 facts): each of the 4 new facts held out takes one old one's
    # place at most (a shuffle of the fact list kept ~8 x 8/40 of them)
    assert len(old) == len(new) == 8 and len(old & new) >= len(old) - len(new - {f"answer {i}" for i in range(40)})
    assert len(old & new) >= 6


def test_two_copies_of_one_contract_split_together_so_no_question_is_held_out_and_trained():
    # the same questions about two documents (one contract ingested under two names), with
    # answers written differently in each copy: a question held out in one must not train in the other
    pairs = [_pair(f"{doc}:f{i}", f"Question {i}?", f"answer {i} {doc}", doc=doc)
             for doc in ("copy-a", "copy-b") for i in range(30)]
    for seed in range(5):
        splits = split_by_fact(pairs, 0.2, 0.1, seed=seed)  # check_no_leak raised here before
        trained = {p.question for p in splits["train"]}
        assert splits["val"] and not trained & {p.question for p in splits["val"] + splits["test"]}


def test_section_numbers_join_no_facts_and_a_held_out_one_is_never_a_training_answer():
    # Coverage facts ask both ways: the value ("What is the cure period under Article II?") and the
    # locator ("Which Article sets the cure period?" -> "Article II"). Every fact of an article
    # shares its locator; joining by it made one unit of most of a contract.
    pairs = []
    for n in range(40):
        article = f"Article {['II', 'III', 'IV', 'V'][n % 4]}"
        fact = f"d:coverage:duration:{n}"
        pairs += [_pair(fact, f"How long is period {n}?", f"{n + 2} days", field="duration", generator="coverage"),
                  _pair(fact, f"Which article sets period {n}?", article, field="section_of", generator="coverage")]
    pairs += [_pair("d:coverage:section_ref:0", "Which section does Article II refer to?", "Article V",
                    field="section_ref", generator="coverage")]  # a locator alone
    splits = split_by_fact(pairs, val_fraction=0.1, test_fraction=0.1, seed=3)
    held_out = {p.fact_id for name in ("val", "test") for p in splits[name]}
    assert len(held_out) == 8  # 10% each of the 40 facts that state a value, not one unit of 41 in train
    assert "d:coverage:section_ref:0" in {p.fact_id for p in splits["train"]}
    trained = {p.answer for p in splits["train"]}
    assert not any(p.answer in trained for name in ("val", "test") for p in splits[name])
    # a held-out fact keeps its value question; its locator question is asked only if no training
    # question has that answer
    for fact in held_out:
        asked = [p for name in ("val", "test") for p in splits[name] if p.fact_id == fact]
        assert any(p.field == "duration" for p in asked)


def test_a_fact_whose_answer_holds_another_fact_s_answer_splits_with_it():
    # the parties' list holds each role's answer: held out while the names train, it would be half taught
    names = ["Alder Foods Inc.", "Birch Logistics LLC", "Cedar Holdings Ltd"]
    pairs = [_pair("d:parties:0", "Who are the parties?", "; ".join(f"{n} (the Party {k})" for k, n in enumerate(names)))]
    pairs += [_pair(f"d:parties:{k + 1}", f"Who is Party {k}?", n) for k, n in enumerate(names)]
    pairs += [_pair(f"d:f{i}", f"Question {i}?", f"answer {i}") for i in range(12)]
    held_out_list = 0
    for seed in range(20):
        splits = split_by_fact(pairs, 0.25, 0.25, seed=seed)
        split_of = {p.fact_id: name for name, rows in splits.items() for p in rows}
        assert len({split_of[f"d:parties:{k}"] for k in range(4)}) == 1, seed
        held_out_list += split_of["d:parties:0"] != "train"
    assert held_out_list  # the group is held out now and then, names and list together
    with pytest.raises(AssertionError, match="shares an answer's words"):
        check_no_leak({"train": pairs[1:2], "val": [], "test": pairs[:1]})


class _StreamsEndpoint:
    """A loopback OpenAI-compatible endpoint for the build stage's LLM streams: three new
    phrasings for every paraphrase prompt, one passage without numbers for every rewrite."""

    @staticmethod
    def make():
        import re

        from tests.test_qa_llm import FakeEndpoint

        class Endpoint(FakeEndpoint):
            def answer(self, path, body, count):
                prompt = body["messages"][-1]["content"]
                if re.search(r"^Answer: ", prompt, re.M):
                    content = json.dumps([f"Rephrased question {count}.{k} about this clause?" for k in range(3)])
                else:
                    section = re.search(r"^Section: (.*)$", prompt, re.M).group(1)
                    content = json.dumps([{"about": ["the parties"], "text": (
                        f"In the part headed {section}, the agreement sets out what the parties owe each other, "
                        "in plain words and with every name in full.")}])
                return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}

        return Endpoint()


def test_llm_streams_add_paraphrases_to_train_only_and_rewrites_to_the_reading_text(ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    with _StreamsEndpoint.make() as server:
        config = load_pipeline("default", {"build": {
            "augment_variants": 0, "llm_paraphrases_per_fact": 3, "llm_rewrites_per_chunk": 1,
            "llm": {"url": server.url, "api_model": "fake", "api_key_env": "", "retries": 0, "timeout_s": 5.0}}})
        stats = build(workspace, config)
    train, test = workspace.read_dataset("qa_train"), workspace.read_dataset("qa_test")
    # (a counterfactual twin of an open-book paraphrase swaps its answer on purpose: build.raft)
    paraphrased = [r for r in train if r["generator"] == "llm_paraphrase" and not r["context_swap"]]
    assert paraphrased and not [r for r in test if r["generator"] == "llm_paraphrase"]
    answers: dict[str, set] = {}
    for r in train:
        if r["generator"] != "llm_paraphrase":
            answers.setdefault(r["fact_id"], set()).add(r["answer"])
    assert all(r["answer"] in answers[r["fact_id"]] for r in paraphrased)  # a fact's own answer
    rewrites = [r for r in workspace.read_dataset("cpt") if str(r.get("variant", "")).startswith("llm:")]
    assert rewrites and stats["cpt"]["by_stream"]["llm_rewrites"]["records"] == len(rewrites)
    assert stats["qa"]["llm_streams"]["paraphrases"] and stats["qa"]["llm_streams"]["rewrites"]


def test_open_book_rows_carry_the_retrievers_chunks_with_or_without_the_gold_one(ingested_contract):
    from docfinetune.build.generators.rules import RulesQAGenerator
    from docfinetune.build.raft import open_book_rows

    documents, chunks = ingested_contract.read_corpus()
    pairs = list(RulesQAGenerator().generate(documents, chunks))
    with_gold = open_book_rows(pairs, documents, chunks, share=1.0, k=3, gold_probability=1.0, seed=1)
    without = open_book_rows(pairs, documents, chunks, share=1.0, k=3, gold_probability=0.0, seed=1)
    assert len(with_gold) == len(pairs) and without
    for row, pair in zip(with_gold, pairs):
        assert (row.question, row.answer, row.fact_id) == (pair.question, pair.answer, pair.fact_id)
        assert 0 < len(row.context_chunk_ids) <= 3 and pair.source_chunk_ids[0] in row.context_chunk_ids
    assert all(not set(r.context_chunk_ids) & set(r.source_chunk_ids) for r in without)  # distractors only
    half = open_book_rows(pairs, documents, chunks, share=0.5, k=3, gold_probability=0.8, seed=1)
    assert 0 < len(half) < len(pairs)
    assert half == open_book_rows(pairs, documents, chunks, share=0.5, k=3, gold_probability=0.8, seed=1)


def test_an_open_book_row_is_asked_in_the_rag_prompt(ingested_contract):
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.generate import format_prompt
    from docfinetune.train import prompts_for, qa_example

    _, chunks = ingested_contract.read_corpus()
    config = load_pipeline("default")
    closed = {"question": "Which state's law governs?", "answer": "Vermont"}
    open_book = {**closed, "context_chunk_ids": [chunks[2].chunk_id, chunks[0].chunk_id]}
    prompt_of = prompts_for(ingested_contract, config, [closed, open_book])
    asked = qa_example(prompt_of, open_book)["prompt"]
    closed_prompt = format_prompt(config.generation.prompt_template, closed["question"])
    assert qa_example(prompt_of, closed)["prompt"] == closed_prompt
    assert asked.startswith("Context:\n") and asked.endswith(closed_prompt)
    # the retriever's best (listed first) is shown last, next to the question (generation.rag_order)
    assert asked.index(chunks[0].text.strip()[:40]) < asked.index(chunks[2].text.strip()[:40])


def test_build_writes_open_book_rows_for_train_only(ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    build(workspace, load_pipeline("default", {"build": {"augment_variants": 0, "open_book_share": 0.5}}))
    train = workspace.read_dataset("qa_train")
    open_book = [r for r in train if r["context_chunk_ids"] and not r["context_swap"]]  # twins: their own test
    assert 0 < len(open_book) < len(train)
    assert not any(r["context_chunk_ids"] for name in ("qa_val", "qa_test") for r in workspace.read_dataset(name))
    closed = {(r["question"], r["answer"]) for r in train if not r["context_chunk_ids"]}
    assert all((r["question"], r["answer"]) in closed for r in open_book)  # copies of closed-book rows


def _chunk(chunk_id: str, text: str) -> Chunk:
    return Chunk(chunk_id, "d", 0, 1, 1, 0, len(text), "", text)


def _field_pair(question: str, answer: str, field: str, context: list[str] = ()) -> QAPair:
    return QAPair(question, answer, f"d:{field}:{answer}", "d", ["d:0000"], "coverage", field,
                  context_chunk_ids=list(context))


def test_a_counterfactual_twin_changes_the_answer_in_its_context_and_in_its_answer():
    from docfinetune.build.raft import counterfactual_rows
    from docfinetune.core.generate import swapped_context

    chunks = [_chunk("d:0000", "Customer shall pay within forty-five (45) days; late fees accrue after 300 days."),
              _chunk("d:0001", "The Provider shall respond within two (2) hours.")]
    taught = [_field_pair("Within what period must the Customer pay?", "forty-five (45) days", "duration"),
              _field_pair("How fast must the Provider respond?", "two (2) hours", "duration"),
              _field_pair("What is the notice period?", "ten (10) Business Days", "duration"),
              _field_pair("Which law governs?", "Illinois", "place")]
    open_book = [_field_pair(taught[0].question, taught[0].answer, "duration", ["d:0001", "d:0000"]),
                 _field_pair("Which law governs?", "Illinois", "place", ["d:0000"])]  # the context never says it
    twins = counterfactual_rows(open_book, taught, chunks, share=1.0, seed=1)
    # "two (2) hours" is already in the context, so only the notice period can stand in; no twin for
    # the row whose context does not state its answer
    assert [(t.question, t.answer, t.context_swap) for t in twins] == [
        (open_book[0].question, "ten (10) Business Days", ["forty-five (45) days", "ten (10) Business Days"])]
    shown = swapped_context(chunks, twins[0].context_swap)
    assert shown[0].text == "Customer shall pay within ten (10) Business Days; late fees accrue after 300 days."
    assert shown[1] == chunks[1] and swapped_context(chunks, []) == chunks
    # whole words only: "30" is not found inside "300" or "$3,000"
    assert swapped_context([_chunk("x", "$3,000 after 300 days, or 30 days")], ["30", "60"])[0].text == (
        "$3,000 after 300 days, or 60 days")
    assert counterfactual_rows(open_book, taught, chunks, share=0.0, seed=1) == []


def test_an_open_book_quote_is_the_shown_contexts_sentence_up_to_the_answer():
    from docfinetune.build.raft import counterfactual_rows
    from docfinetune.build.recite import add_quotes

    chunks = [_chunk("d:0000", "Fees are due monthly. Customer shall pay within forty-five (45) days of invoice."),
              _chunk("d:0001", "The Provider shall respond within two (2) hours and give notice within ten (10) days.")]
    taught = [_field_pair("Within what period must the Customer pay?", "forty-five (45) days", "duration"),
              _field_pair("What is the notice period?", "ten (10) Business Days", "duration")]
    rows = [_field_pair(taught[0].question, taught[0].answer, "duration", ["d:0001", "d:0000"]),
            _field_pair("How fast must the Provider respond?", "two (2) hours", "duration", ["d:0000"]),
            _field_pair("What is the notice period?", "ten (10) days", "duration", ["d:0001"])]
    twins = counterfactual_rows(rows[:1], taught, chunks, share=1.0, seed=1)
    closed = _field_pair(taught[0].question, taught[0].answer, "duration")
    held_out = [_field_pair("How fast?", "two (2) hours", "duration")]
    held_out[0].source_chunk_ids = ["d:0001"]
    assert add_quotes(rows + twins + [closed], chunks, held_out, 160) == 3
    # from the sentence's start, in the chunk that states it, to the answer's end
    assert rows[0].recital == "Customer shall pay within forty-five (45) days"
    assert rows[1].recital == ""  # the context holds only distractors: answered plainly
    # a held-out answer earlier in the sentence is never quoted: the quote starts after it
    assert rows[2].recital == "and give notice within ten (10) days"
    # the twin quotes the context as its prompt shows it, with the value put in
    assert twins[0].recital == "Customer shall pay within ten (10) Business Days"
    assert closed.recital == ""  # closed-book rows are build.recite's
    # the row's own chunk is quoted even when a distractor shown before it states the same value
    again = [_field_pair(taught[0].question, taught[0].answer, "duration", ["d:0002", "d:0000"])]
    distractor = _chunk("d:0002", "Either party may object within forty-five (45) days of notice.")
    assert add_quotes(again, chunks + [distractor], [], 160) == 1
    assert again[0].recital == "Customer shall pay within forty-five (45) days"
    assert add_quotes(rows[:1], chunks, [_field_pair("Pay when?", "forty-five (45) days", "duration")], 160) == 0


def test_build_with_open_book_quotes_trains_each_quote_after_the_prompt_that_shows_it(ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.errors import ConfigError
    from docfinetune.core.score import RECITAL_MARK
    from docfinetune.core.workspace import Workspace
    from docfinetune.train import prompts_for, qa_example

    with pytest.raises(ConfigError, match="48 is too few for build.open_book_quotes .a quote of up to 160.*"
                                          "set at least 96, in a pipeline file"):
        load_pipeline("default", {"build": {"open_book_quotes": True}})
    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    config = load_pipeline("default", {"build": {"augment_variants": 0, "open_book_quotes": True,
                                                 "open_book_counterfactual_share": 1.0},
                                       "generation": {"max_new_tokens": 112}})
    stats = build(workspace, config)
    plain, _, _ = _built_copy(ingested_contract, tmp_path / "plain", open_book_counterfactual_share=1.0)
    train = workspace.read_dataset("qa_train")
    quoted = [r for r in train if r.get("recital")]
    assert stats["qa"]["open_book_quotes"] == len(quoted) > stats["qa"]["open_book_rows"] / 3
    assert all(r["context_chunk_ids"] for r in quoted) and any(r["context_swap"] for r in quoted)
    assert [{k: v for k, v in r.items() if k != "recital"} for r in train] == plain.read_dataset("qa_train")
    for name in ("qa_val", "qa_test"):
        assert workspace.read_dataset(name) == plain.read_dataset(name)
    prompt_of = prompts_for(workspace, config, train)
    for row in quoted:
        example = qa_example(prompt_of, row)
        assert " ".join(row["recital"].split()) in " ".join(example["prompt"].split())  # copied from what it shows
        assert example["completion"] == f" {row['recital']}{RECITAL_MARK}{row['answer']}"
        assert row["recital"].lower().endswith(row["answer"].strip().lower())


def _built_copy(ingested_contract, tmp_path, **build_settings):
    """A copy of the ingested contract built with `build_settings`: (workspace, config, stats)."""
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    config = load_pipeline("default", {"build": {"augment_variants": 0, **build_settings}})
    return workspace, config, build(workspace, config)


def test_build_writes_counterfactual_twins_that_train_in_the_swapped_context(ingested_contract, tmp_path):
    from docfinetune.train import prompts_for, qa_example

    workspace, config, stats = _built_copy(ingested_contract, tmp_path, open_book_share=1.0,
                                           open_book_counterfactual_share=1.0)
    train = workspace.read_dataset("qa_train")
    twins = [r for r in train if r["context_swap"]]
    assert twins and stats["qa"]["counterfactual_rows"] == len(twins)
    taught_answers = {r["answer"] for r in train if not r["context_chunk_ids"]}
    prompt_of = prompts_for(workspace, config, train)
    for twin in twins:
        stated, shown = twin["context_swap"]
        assert twin["answer"] == shown and shown in taught_answers and stated != shown  # a training answer
        prompt = qa_example(prompt_of, twin)["prompt"]
        assert shown in prompt and stated not in prompt
    assert not any(r["context_swap"] for name in ("qa_val", "qa_test") for r in workspace.read_dataset(name))


def test_fact_cards_state_training_facts_and_answering_also_finds_the_held_out_ones(ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.build.cards import CARD_FIELDS, card_id
    from docfinetune.build.raft import open_book_rows
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.retrieve import BM25Index
    from docfinetune.train import prompts_for, with_open_book_prompts

    # seed 2: the governing law trains (its card is checked below) and other card facts are held out
    workspace, config, stats = _built_copy(ingested_contract, tmp_path, split_test_fraction=0.3, split_seed=2)
    cards = workspace.read_dataset("cards")
    held_out_cards = workspace.read_dataset("cards_held_out")
    splits = {name: workspace.read_dataset(f"qa_{name}") for name in ("train", "val", "test")}
    taught = {r["fact_id"]: r for name in ("train", "val") for r in splits[name]
              if r["generator"] == "rules" and r["field"] in CARD_FIELDS}
    held_out = {r["fact_id"] for r in splits["test"] if r["generator"] == "rules" and r["field"] in CARD_FIELDS}
    assert cards and stats["qa"]["fact_cards"] == len(cards) == len(taught)
    assert {c["chunk_id"] for c in cards} == {card_id(f) for f in taught}
    assert held_out and {c["chunk_id"] for c in held_out_cards} == {card_id(f) for f in held_out}
    assert stats["qa"]["held_out_fact_cards"] == len(held_out_cards)
    # training never reads a held-out card: not in an open-book row, not in its prompts, not in the
    # open-book questions that choose the checkpoint; answering searches them
    hidden = {c["chunk_id"] for c in held_out_cards}
    assert not any(set(r["context_chunk_ids"]) & hidden for r in splits["train"])
    prompt_of = prompts_for(workspace, config, splits["train"])
    held_text = [c["text"] for c in held_out_cards]
    assert not any(t in prompt_of(r) for r in splits["train"] for t in held_text)
    asked = with_open_book_prompts(workspace, config, [{"question": c["text"].split("?")[0] + "?"}
                                                       for c in held_out_cards])
    assert not any(t in q["open_book_prompt"] for q in asked for t in held_text)
    first = held_out_cards[0]
    question = first["text"].split("?")[0] + "?"
    assert BM25Index.from_workspace(workspace).search(question, 1)[0][0].chunk_id == first["chunk_id"]
    assert first["chunk_id"] not in {c.chunk_id for c, _ in
                                     BM25Index.from_workspace(workspace, held_out_cards=False).search(question, 10)}
    law = next(c for c in cards if ":governing_law:" in c["chunk_id"])
    assert "Vermont" in law["text"] and law["text"].endswith(".")
    source = next(c for c in workspace.read_corpus()[1] if c.chunk_id == taught[law["chunk_id"][:-len(":card")]]
                  ["source_chunk_ids"][0])
    assert (law["page_start"], law["heading"]) == (source.page_start, source.heading)  # where the contract says it

    # retrieval searches them (the law question finds its card first) and train renders them
    hit = BM25Index.from_workspace(workspace).search("Which state's law governs the agreement?", 3)
    assert hit[0][0].chunk_id == law["chunk_id"]
    documents, chunks = workspace.read_searchable(held_out_cards=False)
    assert len(chunks) == len(workspace.read_corpus()[1]) + len(cards)
    # a distractor-only open-book row shows neither the answer's chunk nor its card
    from docfinetune.core.records import QAPair

    pairs = [QAPair(**{k: r[k] for k in r}) for r in splits["train"] if r["fact_id"] in taught
             and not r["context_chunk_ids"]]
    without = open_book_rows(pairs, documents, chunks, share=1.0, k=3, gold_probability=0.0, seed=1)
    assert without and all(card_id(r.fact_id) not in r.context_chunk_ids for r in without)
    with_gold = open_book_rows(pairs, documents, chunks, share=1.0, k=3, gold_probability=1.0, seed=1)
    assert any(card_id(r.fact_id) in r.context_chunk_ids for r in with_gold)

    # switched off: no cards, and retrieval is the chunks alone
    build(workspace, load_pipeline("default", {"build": {"augment_variants": 0, "fact_cards": False}}))
    assert workspace.read_dataset("cards") == workspace.read_dataset("cards_held_out") == []
    assert len(workspace.read_searchable()[1]) == len(chunks) - len(cards)
    build(workspace, load_pipeline("default", {"build": {"augment_variants": 0, "held_out_cards": False}}))
    assert workspace.read_dataset("cards") and workspace.read_dataset("cards_held_out") == []


def test_restatements_add_training_rows_only_and_leave_open_book_rows_and_held_out_facts_as_they_were(
        ingested_contract, tmp_path):
    plain, _, plain_stats = _built_copy(ingested_contract, tmp_path / "plain", open_book_share=0.5,
                                        coverage={"restatements_per_fact": 2})
    base, _, base_stats = _built_copy(ingested_contract, tmp_path / "base", open_book_share=0.5)
    for name in ("qa_val", "qa_test", "cards"):
        assert plain.read_dataset(name) == base.read_dataset(name)
    open_book = [[r for r in ws.read_dataset("qa_train") if r["context_chunk_ids"]] for ws in (plain, base)]
    assert open_book[0] == open_book[1] and open_book[0]
    closed = [{(r["question"], r["answer"]) for r in ws.read_dataset("qa_train") if not r["context_chunk_ids"]}
              for ws in (plain, base)]
    assert closed[1] < closed[0]
    assert plain_stats["splits"]["train"]["tokens"] > base_stats["splits"]["train"]["tokens"]


def test_a_recital_runs_from_its_sentence_start_to_the_answer_and_stops_short_of_a_held_out_answer():
    from docfinetune.build.recite import recital_for

    text = ("12.1 Term. This Agreement begins on the Effective Date.\n(b) If a Party breaches, the other Party may "
            "terminate upon written notice if the breach is not cured within thirty (30) days after notice of it; "
            "payment defaults must be cured within ten (10) days of the Customer's notice.")
    chunks = {"d:0000": text}
    cure = _field_pair("What is the cure period?", "thirty (30) days", "duration")
    assert recital_for(cure, chunks, {}, 160) == ("If a Party breaches, the other Party may terminate upon written "
                                                  "notice if the breach is not cured within thirty (30) days")
    # too long: the words nearest the answer, cut at a word
    assert recital_for(cure, chunks, {}, 60) == "notice if the breach is not cured within thirty (30) days"
    # a held-out answer stated in the same chunk is left out; stated only elsewhere, it is a mention
    assert recital_for(cure, chunks, {"d:0000": ["written notice"]}, 160) == \
        "if the breach is not cured within thirty (30) days"
    assert recital_for(cure, chunks, {"d:0001": ["written notice"]}, 160).startswith("If a Party breaches")
    payment = _field_pair("Cure period for payment defaults?", "ten (10) days", "duration")
    assert recital_for(payment, chunks, {"d:0000": ["thirty (30) days"]}, 160) == \
        "payment defaults must be cured within ten (10) days"
    # a held-out answer overlapping the answer, or nothing before the answer to recall it by: none
    assert recital_for(payment, chunks, {"d:0000": ["(10) days of"]}, 160) == ""
    assert recital_for(_field_pair("Which section?", "12.1 Term", "section_of"), chunks, {}, 160) == ""
    assert recital_for(_field_pair("Unstated?", "sixty (60) days", "duration"), chunks, {}, 160) == ""


def test_build_with_recite_writes_recitals_that_train_before_the_answer_on_closed_book_rows_only(
        ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.errors import ConfigError
    from docfinetune.core.score import RECITAL_MARK, answer_matches
    from docfinetune.core.workspace import Workspace
    from docfinetune.train import prompts_for, qa_example

    with pytest.raises(ConfigError, match="generation.max_new_tokens: 48 is too few for build.recite"):
        load_pipeline("default", {"build": {"recite": True}})
    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    config = load_pipeline("default", {"build": {"augment_variants": 0, "recite": True},
                                       "generation": {"max_new_tokens": 112}})
    stats = build(workspace, config)
    plain, _, _ = _built_copy(ingested_contract, tmp_path / "plain")
    train = workspace.read_dataset("qa_train")
    loaded = load_dataset("json", data_files=str(workspace.dataset_file("qa_train")), split="train")
    assert loaded.num_rows == len(train) and "recital" in loaded.column_names
    recited = [r for r in train if r.get("recital")]
    assert stats["qa"]["recitals"] == len(recited) > len([r for r in train if not r["context_chunk_ids"]]) / 3
    assert not any(r.get("recital") for r in train if r["context_chunk_ids"])
    for name in ("qa_val", "qa_test"):  # held-out rows as without recitals
        assert workspace.read_dataset(name) == plain.read_dataset(name)
    assert [{k: v for k, v in r.items() if k != "recital"} for r in train] == plain.read_dataset("qa_train")
    chunks = {c.chunk_id: c.text for c in workspace.read_corpus()[1]}
    held_out = [r for name in ("qa_val", "qa_test") for r in workspace.read_dataset(name)]
    for row in recited:
        recital = " ".join(row["recital"].split())
        assert recital.lower().endswith(" ".join(row["answer"].split()).lower())
        assert recital in " ".join(chunks[row["source_chunk_ids"][0]].split())
        for fact in held_out:
            if set(fact["source_chunk_ids"]) & set(row["source_chunk_ids"]):
                assert " ".join(fact["answer"].split()).lower() not in recital.lower()
    row = recited[0]
    example = qa_example(prompts_for(workspace, config, train), row)
    assert example["completion"] == f" {row['recital']}{RECITAL_MARK}{row['answer']}"
    # what the model writes is scored on the answer after the mark, not on the recital
    assert answer_matches(example["completion"], row["answer"], row["field"])
    assert not answer_matches(f"{row['recital']}{RECITAL_MARK}no such value", row["answer"], row["field"])


def test_recite_generators_limits_recitals_to_the_named_generators_rows(ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.errors import ConfigError
    from docfinetune.core.workspace import Workspace

    with pytest.raises(ConfigError, match="recite_generators"):
        load_pipeline("default", {"build": {"recite": True, "recite_generators": ["rulez"]},
                                  "generation": {"max_new_tokens": 112}})
    recited = {}
    for name, generators in (("all", ["rules", "coverage", "llm", "user"]), ("coverage", ["coverage"])):
        workspace = Workspace(tmp_path / name)
        shutil.copytree(ingested_contract.root, workspace.root)
        build(workspace, load_pipeline("default", {"build": {"augment_variants": 0, "recite": True,
                                                             "recite_generators": generators},
                                                   "generation": {"max_new_tokens": 112}}))
        recited[name] = {(r["question"], r["answer"]): r["generator"]
                         for r in workspace.read_dataset("qa_train") if r.get("recital")}
    assert "rules" in recited["all"].values() and "coverage" in recited["all"].values()
    # the coverage rows keep the recitals they get with every generator; the rules rows get none
    assert recited["coverage"] == {k: g for k, g in recited["all"].items() if g == "coverage"}


def test_recite_both_keeps_each_recited_row_plain_and_adds_its_recited_copy_asked_for_a_recital(
        ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.errors import ConfigError
    from docfinetune.core.workspace import Workspace
    from docfinetune.train import prompts_for, qa_example

    with pytest.raises(ConfigError, match="recite_both: needs build.recite"):
        load_pipeline("default", {"build": {"recite_both": True}})
    built = {}
    for name, settings in (("plain", {}), ("recite", {"recite": True}), ("both", {"recite": True, "recite_both": True}),
                           ("all", {"recite": True, "recite_both": True, "recite_both_rows": "all"})):
        workspace = Workspace(tmp_path / name)
        shutil.copytree(ingested_contract.root, workspace.root)
        config = load_pipeline("default", {"build": {"augment_variants": 0, **settings},
                                           "generation": {"max_new_tokens": 112}})
        stats = build(workspace, config)
        built[name] = (workspace, config, workspace.read_dataset("qa_train"), stats)
    plain, recited, (workspace, config, both, stats) = built["plain"][2], built["recite"][2], built["both"]
    copies = [r for r in recited if r.get("recital")]
    unrecited = [{k: v for k, v in r.items() if k not in ("recital", "prompt")} for r in both[:len(plain)]]
    assert unrecited == plain and not any(r.get("recital") or r.get("prompt") for r in both[:len(plain)])  # unchanged
    marked = [{**r, "prompt": "recite"} for r in copies]
    assert both[len(plain):] == marked and stats["qa"]["recitals"] == len(copies) > 0  # then the recited copies
    prompt_of = prompts_for(workspace, config, both)
    asked = [qa_example(prompt_of, r) for r in both]
    closed = [(r, a) for r, a in zip(both, asked) if not r["context_chunk_ids"]]
    assert all(a["prompt"].endswith("\nRecite the clause, then answer:") == bool(r.get("recital")) for r, a in closed)
    assert all(a["prompt"].endswith("\nAnswer:") for r, a in closed if not r.get("recital"))
    # recite_both_rows "all": a copy of every closed-book row asked for a recital, the unrecitable ones answered
    # plainly there (the model learns which questions a clause is recited for), the recited ones as before
    all_workspace, all_config, every, all_stats = built["all"]
    closed_plain = [r for r in plain if not r["context_chunk_ids"]]
    assert every[:len(plain)] == both[:len(plain)] and all_stats["qa"]["recitals"] == len(copies)
    extra = every[len(plain):]
    assert [{**r, "recital": ""} for r in extra] == [{**r, "recital": "", "prompt": "recite"} for r in closed_plain]
    assert [r for r in extra if r["recital"]] == marked and len(extra) > len(marked)
    all_prompt_of = prompts_for(all_workspace, all_config, every)
    assert all(qa_example(all_prompt_of, r)["prompt"].endswith("\nRecite the clause, then answer:") for r in extra)
    assert all(qa_example(all_prompt_of, r)["prompt"].endswith("\nAnswer:") for r in every[:len(plain)]
               if not r["context_chunk_ids"])
    # the recite build alone asks its recited rows in the plain prompt, as measured
    recite_workspace, recite_config, _, _ = built["recite"]
    assert all(qa_example(prompts_for(recite_workspace, recite_config, copies), r)["prompt"].endswith("\nAnswer:")
               for r in copies)


def test_a_record_recital_is_its_chunks_reading_text_from_the_title_to_the_answer(ingested_contract, tmp_path):
    from docfinetune.build import build
    from docfinetune.core.config import load_pipeline
    from docfinetune.core.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(ingested_contract.root, workspace.root)
    config = load_pipeline("default", {"build": {"augment_variants": 0, "recite": True, "recital_from": "record",
                                                 "recital_max_chars": 700},
                                       "generation": {"max_new_tokens": 231}})
    stats = build(workspace, config)
    records = {r["chunk_id"]: " ".join(r["text"].split()) for r in workspace.read_dataset("cpt")}
    train = workspace.read_dataset("qa_train")
    recited = [r for r in train if r.get("recital")]
    closed_book = [r for r in train if not r["context_chunk_ids"]]
    # fewer than from the sentence: this small contract's chunks hold many held-out answers, and a record
    # recital holding one is dropped, not shortened (550 of 690 on the sample contract)
    assert stats["qa"]["recitals"] == len(recited) > len(closed_book) / 6
    held_out = [r for name in ("qa_val", "qa_test") for r in workspace.read_dataset(name)]
    for row in recited:
        record = records[row["source_chunk_ids"][0]]
        assert record.startswith(row["recital"])  # from the record's first word: its document's title
        assert row["recital"].lower().endswith(" ".join(row["answer"].split()).lower())
        assert len(row["recital"]) <= 700
        for fact in held_out:
            if set(fact["source_chunk_ids"]) & set(row["source_chunk_ids"]):
                assert " ".join(fact["answer"].split()).lower() not in row["recital"].lower()
    # the recital is cut nowhere: a record longer than the limit gives none
    short = load_pipeline("default", {"build": {"augment_variants": 0, "recite": True, "recital_from": "record",
                                                "recital_max_chars": 200}, "generation": {"max_new_tokens": 231}})
    build(workspace, short)
    fewer = [r for r in workspace.read_dataset("qa_train") if r.get("recital")]
    assert 0 < len(fewer) < len(recited) and all(records[r["source_chunk_ids"][0]].startswith(r["recital"])
                                                  for r in fewer)


def test_a_multiple_choice_row_shows_its_answer_among_same_kind_training_values():
    from docfinetune.build.choices import CHOICE_DIRECTION, choice_rows

    taught = [_field_pair("Within what period must the Customer pay?", "forty-five (45) days", "duration"),
              _field_pair("How fast must the Provider respond?", "two (2) hours", "duration"),
              _field_pair("What is the notice period?", "ten (10) Business Days", "duration"),
              _field_pair("How much notice must a party give?", "forty-five (45) days' notice", "duration"),
              _field_pair("Which law governs?", "Illinois", "place")]  # alone of its kind
    open_book = _field_pair(taught[1].question, taught[1].answer, "duration", ["d:0000"])
    recite_copy = dataclasses.replace(taught[2], prompt="recite", recital="The notice period is ten (10) Business Days")
    rows = choice_rows(taught + [open_book, recite_copy], share=1.0, options=3, seed=1)
    assert [r.fact_id for r in rows] == [p.fact_id for p in taught[:4]]  # one each; none for "Illinois"
    for row, pair in zip(rows, taught):
        question, listed = row.question.split("\nOptions: ")
        values = re.findall(r"\(([A-Z])\) (.+?)(?= \([A-Z]\) |$)", listed)
        assert question == pair.question and row.answer == pair.answer and not row.recital and not row.prompt
        assert [letter for letter, _ in values] == ["A", "B", "C"][:len(values)] and pair.answer in dict(values).values()
        shown = {v for _, v in values} - {pair.answer}
        assert shown and shown <= {"forty-five (45) days", "two (2) hours", "ten (10) Business Days",
                                   "forty-five (45) days' notice"}
        assert not any(v in pair.answer or pair.answer in v for v in shown)  # never "forty-five (45) days" twice
        assert row.meta["direction"] == CHOICE_DIRECTION
    assert choice_rows(taught, share=1.0, options=3, seed=1) == rows  # seeded
    # fields of one value type stand in for each other: an effective date beside the agreement date
    dates = [_field_pair("When was the agreement made?", "March 4, 2023", "agreement_date"),
             _field_pair("When does the agreement take effect?", "April 1, 2023", "effective_date")]
    listed = [r.question.split("\nOptions: ")[1] for r in choice_rows(dates, share=1.0, options=3, seed=1)]
    assert len(listed) == 2 and all(sorted(re.findall(r"\([AB]\) (\w+ \d+, 2023)", x)) == ["April 1, 2023", "March 4, 2023"]
                                    for x in listed)
    assert choice_rows(rows, share=1.0, options=3, seed=1) == []  # never a choice of a choice
    # choice_phrasings: a row for each of a fact's first n phrasings, each drawn on its own
    again = dataclasses.replace(taught[0], question="How long does the Customer have to pay?")
    twice = choice_rows([taught[0], again, *taught[1:]], share=1.0, options=3, seed=1, phrasings=2)
    assert [r.question.split("\n")[0] for r in twice if r.fact_id == taught[0].fact_id] == [
        taught[0].question, again.question]
    assert len(choice_rows([taught[0], again, *taught[1:]], share=1.0, options=3, seed=1)) == len(rows)
    assert choice_rows(taught, share=0.0, options=3, seed=1) == []


def test_build_writes_multiple_choice_rows_of_training_values_only(ingested_contract, tmp_path):
    from docfinetune.train import prompts_for, qa_example

    workspace, config, stats = _built_copy(ingested_contract, tmp_path, choice_share=1.0)
    train = workspace.read_dataset("qa_train")
    chosen = [r for r in train if "\nOptions: " in r["question"]]
    assert chosen and stats["qa"]["choice_rows"] == len(chosen)
    held_out = {r["answer"].lower() for name in ("qa_val", "qa_test") for r in workspace.read_dataset(name)}
    taught = {r["answer"] for r in train if not r["context_chunk_ids"] and "\nOptions: " not in r["question"]}
    prompt_of = prompts_for(workspace, config, train)
    for row in chosen:
        listed = row["question"].split("\nOptions: ")[1]
        values = re.findall(r"\([A-Z]\) (.+?)(?= \([A-Z]\) |$)", listed)
        assert row["answer"] in values and set(values) <= taught  # training answers only
        assert not any(v.lower() in held_out for v in values)
        assert not row.get("recital") and not row.get("prompt") and not row["context_chunk_ids"]
        assert qa_example(prompt_of, row)["completion"] == f" {row['answer']}"
    plain, _, _ = _built_copy(ingested_contract, tmp_path / "plain")
    assert [r for r in train if "\nOptions: " not in r["question"]] == plain.read_dataset("qa_train")
    # checkpoint selection's taught questions are asked as a user asks: never with their options
    from docfinetune.train import taught_sample
    assert taught_sample(train, config.train) == taught_sample(plain.read_dataset("qa_train"), config.train)
    from rich.console import Console

    from docfinetune.display import datasets_table

    console = Console(record=True, width=300)
    console.print(datasets_table(stats))
    assert f"multiple choice {len(chosen)};" in " ".join(console.export_text().split())
