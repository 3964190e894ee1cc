"""The user's own question/answer files (`--qa-file`).

Each line is a JSON object, either {"question", "answer"} (optionally "fact_id" to group
phrasings of one fact, "doc_id", "field"), or instruction data {"instruction", "input",
"output"} as in Llama2-MedTuned-Instructions, read as question = instruction (+ input).
"""

from __future__ import annotations

from pathlib import Path

from docfinetune.core.errors import BadInputError
from docfinetune.core.records import QAPair
from docfinetune.core.workspace import read_jsonl_lines


def read_qa_file(path: Path) -> list[QAPair]:
    """Every row, or a BadInputError naming the file and the bad line numbers."""
    rows, problems = read_jsonl_lines(path)
    pairs = []
    for number, row in rows:
        pair = _pair(row, path.stem, number)
        if isinstance(pair, str):
            problems.append(f"line {number}: {pair}")
        else:
            pairs.append(pair)
    if problems:
        raise BadInputError.from_problems(path, problems)
    if not pairs:
        raise BadInputError(path, "no question/answer rows")
    return pairs


def _type_name(value: object) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _pair(row: object, stem: str, number: int) -> QAPair | str:
    if not isinstance(row, dict):
        return "expected a JSON object"
    # A field of the wrong JSON type is an error, never its Python repr in the training data.
    text_fields = ("instruction", "input", "output", "question", "answer", "doc_id", "field")
    for name in text_fields:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            return f"'{name}' must be a string, not {_type_name(value)}"
    fact_id = row.get("fact_id")
    if fact_id is not None and (isinstance(fact_id, bool) or not isinstance(fact_id, (str, int))):
        return f"'fact_id' must be a string, not {_type_name(fact_id)}"
    if "instruction" in row or "output" in row:
        question = "\n\n".join((row.get(k) or "").strip() for k in ("instruction", "input")).strip()
        answer = row.get("output")
        needed = "'instruction' and 'output'"
    else:
        question, answer = row.get("question"), row.get("answer")
        needed = "'question' and 'answer'"
    if not isinstance(question, str) or not question.strip() or not isinstance(answer, str) or not answer.strip():
        return f"needs non-empty {needed} strings"
    return QAPair(
        question=question.strip(),
        answer=answer.strip(),
        fact_id=str(fact_id if fact_id not in (None, "") else f"user:{stem}:{number}"),
        doc_id=row.get("doc_id") or "",
        source_chunk_ids=[],
        generator="user",
        field=row.get("field") or "",
    )
