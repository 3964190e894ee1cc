"""Two more LLM streams through the shared `ReplyClient`: question paraphrases and entity-centred
rewrites of the documents' sections.

1. `paraphrase_questions`: for each fact (Q&A pairs grouped by fact_id) the model writes
   `per_fact` new phrasings of the question, given the answer, the phrasings so far, the
   document's name and (when chunks are given) the source text around the answer. Ovadia et al.
   (arXiv 2312.05934): accuracy on new facts rises monotonically with the number of paraphrases,
   up to the 10 they tried. Phrasings that contain the answer, repeat one already there, or are
   empty are dropped; the rest keep the fact's id, answer, sources and field, so the split keeps
   them with their fact.
2. `rewrite_sections`: for each section (a run of chunks under one heading, up to
   `max_chars`) the model lists its entities (parties, defined terms, amounts, dates, places)
   and writes `rewrites` passages, each centred on one entity or a pair, restating what the text
   says about them with full names, the document and section named, numbers copied exactly
   (EntiGraph, arXiv 2409.07431; Active Reading, arXiv 2508.09494). A passage that holds a number
   the section does not is dropped as invented. Records are shaped like `build.cpt`'s plus
   "variant": "llm:<k>".

Every reply is cached by the client under a key holding the stream's prompt version
(PARAPHRASE_VERSION, REWRITE_VERSION), so editing one prompt re-asks only that stream. Outputs
are a function of the inputs and the replies: a rerun from the cache gives the same rows.

Not measured: no strong instruct model can be run here (no model hub, no network), so neither
the prompts nor the filters have been tried on real replies; the tests check the plumbing with a
scripted endpoint and a tiny random model. Rewrites need long replies: set llm.max_new_tokens to
about 250 per passage (a reply cut off mid-list keeps its complete passages).
"""

from __future__ import annotations

import re
from typing import Any

from docfinetune.build.generators.llm.client import ReplyClient, document_titles
from docfinetune.build.generators.llm.json_repair import escape_newlines_in_strings, json_values
from docfinetune.core.records import Chunk, Document, QAPair

# ------------------------------------------------------------------------------ tunables

# Bump a version when its prompt or the way its replies are read changes: it is in the cache key.
PARAPHRASE_VERSION = "llm-paraphrase-1"
REWRITE_VERSION = "llm-rewrite-1"

PARAPHRASES_PER_FACT = 10  # Ovadia et al.: gains rise up to the 10 they tried
REWRITES_PER_SECTION = 4
SECTION_MAX_CHARS = 3000  # one rewrite prompt's source text
SNIPPET_CHARS = 1200  # source text shown beside a fact to paraphrase
MIN_PASSAGE_CHARS = 60  # shorter "passages" are fragments

PARAPHRASE_GENERATOR = "llm_paraphrase"

PARAPHRASE_TEMPLATE = """\
You rephrase training questions about an organisation's documents.

Document: {title}
Answer: {answer}
Questions already written for this answer:
{questions}
{source}
Write {n} new questions, each a different way of asking for this same answer. Vary the words and \
the sentence structure (other verbs and synonyms, another word order, direct and indirect, formal \
and plain). Every question must name the document ("{title}") so that it can be understood on its \
own, and its answer must be exactly: {answer}
Never put the answer itself in a question. Do not repeat the questions above.
Reply with JSON only: a list of {n} strings.
["<question 1>", "<question 2>"]"""

REWRITE_TEMPLATE = """\
You rewrite a passage of an organisation's document so that a reader learns its facts well.

Document: {title}
Section: {heading}
Text:
\"\"\"
{text}
\"\"\"

Step 1. List the entities the text mentions: parties, people, defined terms, amounts, dates, \
periods, places, other documents and sections.
Step 2. Write {n} passages. Each passage centres on one entity, or on how two entities relate, and \
restates everything the text says about it. In every passage:
- call each party and defined term by its full name, never "it", "they" or "the party";
- name the document ("{title}") and the section;
- copy every number, date, amount and period exactly as the text gives it;
- use only what the text says: add no facts, advice or opinions.
Each passage centres on a different entity or pair of entities.
Reply in this form: one line "Entities: <entity>; <entity>; ...", then a JSON list of {n} passages:
[{{"about": ["<entity>", "<entity>"], "text": "<the passage, one paragraph>"}}]"""

# Keys under which a wrapper object may carry the list (instead of the list itself).
_QUESTION_KEYS = ("questions", "paraphrases", "phrasings", "items", "results", "data")
_PASSAGE_KEYS = ("passages", "rewrites", "items", "results", "data")
_TEXT_KEYS = ("text", "passage", "content", "rewrite")
_ABOUT_KEYS = ("about", "entities", "entity", "focus")

# One question per line: a bullet or a number before it is taken off.
_LINE_MARK = re.compile(r"^\s*(?:[-*\u2022]|\(?\d{1,3}[.):]|Q\d{0,3}[.):])\s*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


# ------------------------------------------------------------------------------ shared helpers


def _clean(value: Any) -> str:
    """A JSON scalar as one line of text; "" for anything else."""
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return re.sub(r"\s+", " ", str(value)).strip()
    return ""


def _norm(text: str) -> str:
    """Case-, space- and end-punctuation-insensitive form, for duplicates."""
    return re.sub(r"\s+", " ", text).strip().casefold().rstrip(" ?.!")


def contains_answer(question: str, answer: str) -> bool:
    """Whether the answer appears in the question (case- and space-insensitive; not inside a
    longer word or number, so the answer "5" is not found in "Section 15")."""
    a = re.sub(r"\s+", " ", answer).strip().casefold()
    if not a:
        return False
    q = re.sub(r"\s+", " ", question).casefold()
    pattern = re.escape(a)
    if a[0].isalnum():
        pattern = r"(?<![^\W_])" + pattern
    if a[-1].isalnum():
        pattern += r"(?![^\W_])"
    return re.search(pattern, q) is not None


def _unwrap(value: Any, keys: tuple[str, ...]) -> Any:
    """The list inside a wrapper object ({"questions": [...]}, or any object with one list)."""
    if isinstance(value, dict):
        inner = next((value[k] for k in keys if isinstance(value.get(k), list)), None)
        if inner is None:
            lists = [v for v in value.values() if isinstance(v, list)]
            inner = lists[0] if len(lists) == 1 else None
        return inner
    return value


def _count(stats: dict, name: str, n: int = 1) -> None:
    stats[name] = stats.get(name, 0) + n


# ------------------------------------------------------------------------------ paraphrases


def render_paraphrase_prompt(title: str, answer: str, questions: list[str], snippet: str, n: int) -> str:
    source = f'Source text:\n"""\n{snippet.strip()}\n"""\n' if snippet.strip() else ""
    listed = "\n".join(f"- {q}" for q in questions) or "- (none)"
    return PARAPHRASE_TEMPLATE.format(title=title, answer=answer, questions=listed, source=source, n=n)


def parse_questions(reply: str) -> tuple[list[str] | None, bool]:
    """The questions in a reply and whether it needed a repair: a JSON list of strings (or of
    {"question": ...} objects, or a wrapper object), else one question per line (a repair).
    None when neither can be read."""
    for value, repaired in json_values(reply or ""):
        inner = _unwrap(value, _QUESTION_KEYS)
        if not isinstance(inner, list):
            continue
        if inner is not value:
            repaired = True
        questions: list[str] = []
        usable = not inner  # [] is a reply: "no new phrasing"
        for item in inner:
            if isinstance(item, dict):
                item = next((item[k] for k in ("question", "q", "text") if k in item), None)
            if isinstance(item, str):
                usable = True
                questions.append(_clean(item))  # an empty one is dropped (and counted) by the caller
        if usable:
            return questions, repaired
    lines = _question_lines(reply or "")
    return (lines, True) if lines else (None, False)


def _question_lines(reply: str) -> list[str]:
    """Questions written one per line: the bulleted or numbered lines when there are any (prose
    around them is left out), else the lines that end in "?"."""
    text = re.sub(r"(?s)<think>.*?</think>", "", reply)
    marked_lines, asked = [], []
    for line in text.splitlines():
        mark = _LINE_MARK.match(line)
        line = _clean((line[mark.end():] if mark else line).strip().strip("\"'`"))
        if not line or line.endswith(":") or line.startswith(("```", "[", "{")):
            continue
        if mark:
            marked_lines.append(line)
        elif line.endswith("?"):
            asked.append(line)
    return marked_lines or asked


def _snippet(answer: str, texts: list[str], limit: int = SNIPPET_CHARS) -> str:
    """Up to `limit` characters of the source text, centred on the answer when it is there."""
    text = re.sub(r"\s+", " ", " ".join(texts)).strip()
    if len(text) <= limit:
        return text
    at = text.casefold().find(re.sub(r"\s+", " ", answer).strip().casefold())
    start = 0 if at < 0 else max(0, min(len(text) - limit, at - limit // 2))
    return ("..." if start else "") + text[start:start + limit] + ("..." if start + limit < len(text) else "")


def paraphrase_questions(pairs: list[QAPair], documents: list[Document], client: ReplyClient,
                         per_fact: int = PARAPHRASES_PER_FACT, *, chunks: list[Chunk] | None = None,
                         stats: dict | None = None) -> list[QAPair]:
    """Up to `per_fact` new phrasings of each fact's question, as QAPairs (module docstring).

    Facts come in the order their first pair appears; each new pair copies the fact's first
    pair's fact_id, doc_id, answer, source_chunk_ids and field, with generator "llm_paraphrase"
    and meta {"paraphrase": k, "of_generator": <the first pair's generator>}. With `chunks`, the
    prompt shows the source text around the answer. `stats` (when given) gets: facts, requests,
    cache_hits, retries, repaired, skipped (unreadable replies), proposed, dropped_answer,
    dropped_duplicate, dropped_empty, dropped_extra (beyond per_fact), pairs.
    """
    stats = stats if stats is not None else {}
    facts: dict[str, list[QAPair]] = {}
    for pair in pairs:
        facts.setdefault(pair.fact_id, []).append(pair)
    for name in ("repaired", "skipped", "proposed", "dropped_answer", "dropped_duplicate", "dropped_empty",
                 "dropped_extra", "pairs"):
        stats.setdefault(name, 0)
    _count(stats, "facts", len(facts))
    if per_fact <= 0 or not facts:
        return []

    titles = document_titles(documents)
    chunk_text = {c.chunk_id: c.text for c in chunks or []}
    prompts = []
    for group in facts.values():
        first = group[0]
        known = list(dict.fromkeys(_clean(p.question) for p in group if _clean(p.question)))
        texts = [chunk_text[c] for c in first.source_chunk_ids if c in chunk_text]
        prompts.append(render_paraphrase_prompt(titles.get(first.doc_id, first.doc_id), first.answer, known,
                                                _snippet(first.answer, texts), per_fact))
    replies = client.replies(prompts, PARAPHRASE_VERSION, {"stream": "paraphrase", "per_fact": per_fact},
                             stats=stats)

    out: list[QAPair] = []
    for group, reply in zip(facts.values(), replies):
        first = group[0]
        questions, repaired = parse_questions(reply)
        if questions is None:
            _count(stats, "skipped")
            continue
        _count(stats, "repaired", int(repaired))
        _count(stats, "proposed", len(questions))
        answers = {p.answer for p in group if p.answer.strip()}
        seen = {_norm(p.question) for p in group}
        kept = 0
        for question in questions:
            if not _norm(question):
                _count(stats, "dropped_empty")
            elif any(contains_answer(question, a) for a in answers):
                _count(stats, "dropped_answer")
            elif _norm(question) in seen:
                _count(stats, "dropped_duplicate")
            elif kept >= per_fact:
                _count(stats, "dropped_extra")
            else:
                seen.add(_norm(question))
                out.append(QAPair(
                    question=question, answer=first.answer, fact_id=first.fact_id, doc_id=first.doc_id,
                    source_chunk_ids=list(first.source_chunk_ids), generator=PARAPHRASE_GENERATOR,
                    field=first.field, meta={"paraphrase": kept, "of_generator": first.generator},
                ))
                kept += 1
    stats["pairs"] += len(out)
    return out


# ------------------------------------------------------------------------------ rewrites


def render_rewrite_prompt(title: str, heading: str, text: str, n: int) -> str:
    return REWRITE_TEMPLATE.format(title=title, heading=heading or "(none)", text=text.strip(), n=n)


def section_groups(chunks: list[Chunk], max_chars: int = SECTION_MAX_CHARS) -> list[tuple[list[Chunk], str]]:
    """Runs of consecutive chunks of one document under one heading, each with its text (the
    chunks' overlap counted once), up to `max_chars` of text; a longer chunk is a run alone."""
    groups: list[tuple[list[Chunk], str]] = []
    members: list[Chunk] = []
    text = ""
    for chunk in chunks:
        piece = chunk.text
        if members:
            prev = members[-1]
            overlap = prev.char_end - chunk.char_start
            # chunk.text is the document's text from char_start: drop what the last chunk holds.
            if prev.char_start < chunk.char_start and 0 <= overlap < len(piece):
                piece = piece[overlap:]
            else:
                piece = "\n" + piece
            if chunk.doc_id != prev.doc_id or chunk.heading != prev.heading or len(text) + len(piece) > max_chars:
                groups.append((members, text))
                members, text, piece = [], "", chunk.text
        members.append(chunk)
        text += piece
    if members:
        groups.append((members, text))
    return groups


def parse_passages(reply: str) -> tuple[list[dict] | None, list[str], bool]:
    """(passages [{"text", "about": [...]}, ...] or None, entities listed, repaired).

    Read from a JSON list of {"text", "about"} objects or of strings (or a wrapper object);
    line breaks inside JSON strings are escaped first when needed (a repair); else from
    "Passage <n>:" sections (a repair). None when no passage can be read.
    """
    reply = re.sub(r"(?s)<think>.*?</think>", "", reply or "")
    entities: list[str] = []
    line = re.search(r"^\W*entities\W*:\s*(.+)$", reply, re.I | re.M)
    if line:
        entities = [e for e in (_clean(e).strip("*_\"' ") for e in re.split(r"[;|]", line.group(1))) if e]
    # Read as it is and with line breaks inside strings escaped (a cut-off repair can make the
    # first read return only the passages before the first break); the reading with more passages wins.
    escaped = escape_newlines_in_strings(reply)
    readings = [_json_passages(reply)]
    if escaped != reply:
        found = _json_passages(escaped)
        readings.append(None if found is None else (found[0], True))
    best = max((r for r in readings if r is not None), default=None, key=lambda r: _long_passages(r[0]))
    if best is not None:
        return best[0], entities, best[1]
    marked = re.split(r"(?im)^[\s#*_]*passage\s*\d+\b[^:\n]*:?[*_]*", reply)
    if len(marked) > 1:
        passages = [{"text": _clean(p), "about": []} for p in marked[1:] if _clean(p)]
        if passages:
            return passages, entities, True
    return None, entities, False


def _long_passages(passages: list[dict]) -> int:
    return sum(len(p["text"]) >= MIN_PASSAGE_CHARS for p in passages)


def _json_passages(text: str) -> tuple[list[dict], bool] | None:
    """The first JSON list of passages in the text that holds a passage of full length (the
    entities may come first as a JSON list of short strings), else the first list of passages."""
    first = None
    for value, repaired in json_values(text):
        passages = _as_passages(value)
        if passages is None:
            continue
        repaired = repaired or _unwrap(value, _PASSAGE_KEYS) is not value
        if _long_passages(passages):
            return passages, repaired
        first = first or (passages, repaired)
    return first


def _as_passages(value: Any) -> list[dict] | None:
    inner = _unwrap(value, _PASSAGE_KEYS)
    if isinstance(value, dict) and inner is None and any(k in value for k in _TEXT_KEYS):
        inner = [value]  # a single passage
    if not isinstance(inner, list):
        return None
    passages: list[dict] = []
    usable = not inner
    for item in inner:
        about: list[str] = []
        if isinstance(item, dict):
            raw = next((item[k] for k in _ABOUT_KEYS if k in item), [])
            about = [a for a in (_clean(x) for x in (raw if isinstance(raw, list) else [raw])) if a]
            item = next((item[k] for k in _TEXT_KEYS if k in item), None)
        if isinstance(item, str):
            usable = True
            if _clean(item):
                passages.append({"text": _clean(item), "about": about})
    return passages if usable else None


def _numbers(text: str) -> set[str]:
    """The numbers in a text, commas and trailing zero decimals taken off ("25,000.00" -> "25000")."""
    return {re.sub(r"\.0+$", "", n.replace(",", "")) for n in _NUMBER.findall(text)}


def rewrite_sections(documents: list[Document], chunks: list[Chunk], client: ReplyClient,
                     rewrites: int = REWRITES_PER_SECTION, *, max_chars: int = SECTION_MAX_CHARS,
                     with_context: bool = True, stats: dict | None = None) -> list[dict]:
    """Entity-centred rewrites of each section as reading-text records (module docstring).

    Each record: {"text", "doc_id", "chunk_id" (the section's first chunk), "page_start",
    "page_end" (over the section's chunks), "variant": "llm:<k>"} with k = 1..rewrites, in
    section order then k. With `with_context` the text starts with the document title and the
    heading, as `build.cpt` records do. Passages shorter than MIN_PASSAGE_CHARS, repeated, or
    holding a number that the section (title and heading included) does not hold are dropped.
    `stats` (when given) gets: sections, requests, cache_hits, retries, repaired, skipped
    (unreadable replies), entities (listed), proposed, dropped_short, dropped_numbers,
    dropped_duplicate, dropped_extra, records.
    """
    stats = stats if stats is not None else {}
    groups = section_groups(chunks, max_chars)
    for name in ("repaired", "skipped", "entities", "proposed", "dropped_short", "dropped_numbers",
                 "dropped_duplicate", "dropped_extra", "records"):
        stats.setdefault(name, 0)
    _count(stats, "sections", len(groups))
    if rewrites <= 0 or not groups:
        return []

    titles = document_titles(documents)
    prompts = [render_rewrite_prompt(titles.get(m[0].doc_id, m[0].doc_id), m[0].heading, text, rewrites)
               for m, text in groups]
    replies = client.replies(prompts, REWRITE_VERSION, {"stream": "rewrite", "rewrites": rewrites}, stats=stats)

    records: list[dict] = []
    for (members, text), reply in zip(groups, replies):
        first = members[0]
        title = titles.get(first.doc_id, first.doc_id)
        passages, entities, repaired = parse_passages(reply)
        if passages is None:
            _count(stats, "skipped")
            continue
        _count(stats, "repaired", int(repaired))
        _count(stats, "entities", len(entities))
        _count(stats, "proposed", len(passages))
        known = _numbers(" ".join((title, first.heading, text)))
        header = [title] + ([first.heading] if first.heading and first.heading != title else [])
        seen: set[str] = set()
        for passage in passages:
            body = passage["text"]
            if len(body) < MIN_PASSAGE_CHARS:
                _count(stats, "dropped_short")
            elif not _numbers(body) <= known:
                _count(stats, "dropped_numbers")
            elif _norm(body) in seen:
                _count(stats, "dropped_duplicate")
            elif len(seen) >= rewrites:
                _count(stats, "dropped_extra")
            else:
                seen.add(_norm(body))
                records.append({
                    "text": "\n".join(header) + "\n\n" + body if with_context else body,
                    "doc_id": first.doc_id,
                    "chunk_id": first.chunk_id,
                    "page_start": min(c.page_start for c in members),
                    "page_end": max(c.page_end for c in members),
                    "variant": f"llm:{len(seen)}",
                })
    stats["records"] += len(records)
    return records
