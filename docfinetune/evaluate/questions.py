"""The questions `eval` asks: the held-out Q&A-test rows and/or a user's JSONL file.

A file row is {"question", "answer"?, "field"?, "document"?, "title"?} (the shape of CUAD-style
question sets: "document" is the PDF's file name, "title" the contract's own title). A row that
names a document is matched to an ingested one by file name, then by title; rows naming a
document that is not in the workspace are skipped and counted. When the workspace holds several
documents, a matched row's question is prefixed with its document's title
(`eval.title_question_template`), as the model cannot know which contract "this agreement" means.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from docfinetune.core.config import EvalConfig
from docfinetune.core.errors import BadInputError, WorkspaceError
from docfinetune.core.workspace import Workspace, read_jsonl, read_jsonl_lines

TEST_SOURCE = "qa_test"


@dataclass(frozen=True)
class Question:
    question: str  # as asked (with the document's title when one was added)
    reference: str | None  # None: answered but not scored
    field: str = ""
    doc_id: str = ""
    source: str = TEST_SOURCE  # qa_test, or the questions file's name
    generator: str = ""  # the Q&A generator that wrote a Q&A-test row (rules, coverage...); "" a file's


@dataclass
class QuestionSet:
    questions: list[Question]
    sources: dict[str, int] = field(default_factory=dict)  # questions per source
    skipped: int = 0  # file rows about documents that are not in the workspace
    skipped_documents: list[str] = field(default_factory=list)
    sampled_from: int = 0  # questions before `max_questions` sampling


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


class _DocumentMatcher:
    def __init__(self, workspace: Workspace) -> None:
        self.docs = []
        for doc_id in workspace.doc_ids():
            source = workspace.read_source(doc_id) or {}
            self.docs.append((doc_id, source.get("title") or doc_id, source.get("file_name", "")))

    def find(self, document: str, title: str) -> tuple[str, str] | None:
        """(doc id, title) of the ingested document a row names, or None."""
        for doc_id, doc_title, file_name in self.docs:
            if document and _key(document) in (_key(file_name), _key(Path(file_name).stem), _key(doc_id)):
                return doc_id, doc_title
        for doc_id, doc_title, _ in self.docs:
            if title and _key(title) == _key(doc_title):
                return doc_id, doc_title
        return None


def held_out_questions(workspace: Workspace) -> list[Question]:
    path = workspace.dataset_file("qa_test")
    if not path.is_file():
        return []
    return [Question(row["question"], row["answer"], row.get("field") or "", row.get("doc_id") or "",
                     generator=row.get("generator") or "")
            for row in read_jsonl(path)]


def file_questions(path: Path, workspace: Workspace, config: EvalConfig) -> tuple[list[Question], list[str]]:
    """The file's usable questions, and the names of the documents of skipped rows (one per row)."""
    path = Path(path)
    rows, problems = read_jsonl_lines(path)
    matcher = _DocumentMatcher(workspace)
    several = len(matcher.docs) > 1
    questions, skipped = [], []
    for number, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            problems.append(f"line {number}: needs a non-empty 'question' string")
            continue
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str):
            problems.append(f"line {number}: 'answer' must be a string")
            continue
        document, title = str(row.get("document") or ""), str(row.get("title") or "")
        question, doc_id = row["question"].strip(), ""
        if document or title:
            found = matcher.find(document, title)
            if found is None:
                skipped.append(document or title)
                continue
            doc_id, doc_title = found
            if several:
                question = config.title_question_template.format(title=doc_title, question=question)
        questions.append(Question(question, answer.strip() if answer and answer.strip() else None,
                                  str(row.get("field") or ""), doc_id, path.name))
    if problems:
        raise BadInputError.from_problems(path, problems)
    return questions, skipped


def asks_test_rows(questions_file: Path | None, include_test: bool | None) -> bool:
    """Whether the Q&A-test rows are asked: `include_test`, by default only when no file is given."""
    return questions_file is None if include_test is None else include_test


def load_questions(workspace: Workspace, config: EvalConfig, questions_file: Path | None = None,
                   include_test: bool | None = None) -> QuestionSet:
    """The questions to ask: the Q&A-test rows (`asks_test_rows`) and the file's; a seeded sample
    of `config.max_questions` when that is set. WorkspaceError when there are none."""
    include_test = asks_test_rows(questions_file, include_test)
    questions: list[Question] = []
    skipped: list[str] = []
    if include_test:
        questions += held_out_questions(workspace)
    if questions_file is not None:
        from_file, skipped = file_questions(Path(questions_file), workspace, config)
        questions += from_file
    if not questions:
        if skipped:
            names = sorted(set(skipped))
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise WorkspaceError(f"{questions_file}: all {len(skipped)} questions are about documents that "
                                 f"are not in the workspace ({shown}); ingest them first")
        if questions_file is None:
            raise WorkspaceError(f"{workspace.datasets_dir / 'qa_test.jsonl'}: no held-out test questions; "
                                 "build the datasets (`docfinetune build`) or give --questions FILE.jsonl")
        raise WorkspaceError(f"no questions to ask (the held-out test set is empty and {questions_file} "
                             "has none)")
    total = len(questions)
    if config.max_questions and total > config.max_questions:
        keep = sorted(random.Random(config.seed).sample(range(total), config.max_questions))
        questions = [questions[i] for i in keep]
    sources: dict[str, int] = {}
    for q in questions:
        sources[q.source] = sources.get(q.source, 0) + 1
    return QuestionSet(questions, sources, len(skipped), sorted(set(skipped)), total)
