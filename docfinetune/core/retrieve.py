"""BM25 search over the ingested chunks: the sources `ask --sources` shows, and the retriever of
`eval`'s RAG systems.

A chunk's score is BM25 (rank_bm25's BM25Okapi weights, k1=1.5, b=0.75) summed over fields,
with the weights of `RetrievalConfig` (core/config.py, the `retrieval` section):

    BM25(query, chunk text) + heading_weight * BM25(query, the chunk's section heading)
    + title_weight * (idf over the documents' titles of the query words in the chunk's document title)
    + answer_type_weight * BM25(the answer types the question asks for, those the chunk states)

- Title words: the words a question shares with a document's own title ("Which state's law
  governs the Master Services Agreement?") say which document is meant, not which clause; in
  that document's text and headings they count title_word_weight of their BM25, so the title
  page does not outrank the governing-law clause.
- Answer types (ANSWER_TYPES, ANSWER_TYPE_CUES): a question asking for a date ("when", "date")
  prefers chunks that state one; likewise an amount of money, a duration, a company ("who",
  "parties": chunks naming an "Inc."/"LLC"/...), and the preamble ("made", "parties", "effective
  date": the chunk that says "is made and entered into ... by and between").
- Query expansion (EXPANSIONS): contract words a query word brings in at expansion_weight
  (govern -> laws, governed, construed; renew -> renewal, extend, successive; ...).
- Neighbour tail: a hit that stops mid-sentence comes back with the next chunk's words up to
  that sentence's end (neighbour_tail_chars at most), so an answer split by a chunk boundary is
  whole in what `ask` shows and `eval` prompts with.

The bonuses (title, answer types) only reorder chunks that share a word with the query: a chunk
that shares none never comes back. Words are lowercased runs of letters; numbers keep their
digits ("30", "2024", "$12,500" -> "12500") because contract questions turn on them; a short
stopword list drops words that say nothing about which clause is meant. Suffix stripping
(`stemming`) and dropping legal boilerplate words from queries (`drop_legal_stopwords`) are there
but off: both lost recall on the benchmark (benchmarks/retrieval.py, RESULTS.md "Retrieval").

The word lists and patterns below are module data; the weights are the index's `settings`.
Building the index takes about 0.15 s per 1,000 chunks of 512 characters; a search adds up
precomputed per-word vectors, about 0.05 ms at 150 chunks and 0.2 ms at 3,000.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import replace
from typing import Iterable, Mapping

import numpy as np

from docfinetune.core.config import RetrievalConfig
from docfinetune.core.errors import DocfinetuneError, WorkspaceError
from docfinetune.core.records import Chunk, card_question, is_card
from docfinetune.core.workspace import Workspace

# --------------------------------------------------------------------------- settings

# Query words dropped with `drop_legal_stopwords`: every clause of a contract has them (kept when
# nothing else is left).
LEGAL_STOPWORDS = frozenset("""
agreement agreements party parties shall hereby herein hereof hereto hereunder thereof thereto
therein thereunder whereas pursuant
""".split())
# Related contract words a query word brings in, each at `expansion_weight` of a query word's
# weight (0 turns expansion off); a key also matches its inflections (governs, governing ->
# govern; terminated -> terminate). Values are words as they appear in contracts.
EXPANSIONS: dict[str, tuple[str, ...]] = {
    "govern": ("law", "laws", "construed", "governed", "governing"),
    "law": ("governed", "governing"),
    "jurisdiction": ("courts", "venue", "submit"),
    "venue": ("courts", "jurisdiction"),
    "terminate": ("termination", "terminated"),
    "termination": ("terminate",),
    "cancel": ("terminate", "termination"),
    "expire": ("expiration", "expires", "term"),
    "expiration": ("expire", "term"),
    "renew": ("renewal", "extend", "successive", "automatically"),
    "renewal": ("renew", "extend", "successive"),
    "extend": ("renew", "extension"),
    "pay": ("payment", "fees", "invoice"),
    "fee": ("fees", "payment", "price"),
    "price": ("fees", "payment"),
    "cost": ("fees", "price"),
    "notice": ("notify", "written"),
    "notify": ("notice", "written"),
    "insurance": ("insure", "coverage", "policy"),
    "liability": ("liable", "limitation", "damages"),
    "liable": ("liability", "damages"),
    "confidential": ("confidentiality", "disclose", "disclosure"),
    "confidentiality": ("confidential", "disclose"),
    "parties": ("entered",),
    "made": ("entered", "dated"),
    "incorporated": ("corporation", "organized", "existing"),
    "organized": ("corporation", "company", "existing", "incorporated"),
    "effective": ("commence", "commencement"),
    "commence": ("effective", "commencement"),
    "warranty": ("warrants", "warranties"),
    "indemnify": ("indemnification", "indemnity", "defend", "hold harmless"),
    "assign": ("assignment", "transfer"),
}
# Answer types: a chunk that states a date, an amount of money, a duration or a company (by its
# "Inc."/"LLC"/...) has that type's token in a field of its own; a question that asks for that
# type (ANSWER_TYPE_CUES) adds `answer_type_weight` times the token's BM25 there, to chunks that
# share a word with the question (0 turns answer types off).
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_NUMBER_WORDS = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|eighteen|twenty|"
                 r"thirty|forty|forty-five|fifty|sixty|seventy|seventy-five|eighty|ninety|hundred)")
ANSWER_TYPES: dict[str, re.Pattern] = {  # what a chunk states
    "date": re.compile(rf"(?i)\b{_MONTH}\s*(?:\d{{1,2}}|_+)|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?{_MONTH}"
                       r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b(?:19|20)\d{2}\b"),
    "money": re.compile(r"(?i)[$€£]\s?\d|\b(?:usd|eur|gbp|dollars?)\b"),
    "duration": re.compile(rf"(?i)\b(?:\d+|{_NUMBER_WORDS})\)?\s*(?:\(\d+\)\s*)?-?\s*(?:calendar\s+|business\s+|"
                           r"working\s+)?(?:days?|weeks?|months?|years?|hours?)\b"),
    "company": re.compile(r"\b(?:Inc|INC|Corp|CORP|Corporation|CORPORATION|LLC|L\.L\.C|Ltd|LTD|PLC|plc|GmbH|LLP|"
                          r"L\.P|S\.A|N\.V|B\.V|Pty|PTY|AG)\b\.?|\blimited\s+liability\s+company\b"),
    # the preamble, where a contract names its parties and its date ("is made and entered into as
    # of ... by and between ...")
    "preamble": re.compile(r"(?i)\bby\s+and\s+(?:between|among)\b|\b(?:is|was)\s+(?:made|entered\s+into)\b"
                           r"|\bmade\s+and\s+entered\b|\bentered\s+into\s+(?:as\s+of|on|effective|this)\b"),
}
ANSWER_TYPE_CUES: dict[str, re.Pattern] = {  # what a question asks for
    "date": re.compile(r"(?i)\b(?:date|dated|when|what day|which day)\b"),
    "money": re.compile(r"(?i)\b(?:fees?|price|cost|costs|amount|dollars?|payments?|compensation|royalt(?:y|ies)|"
                        r"how much money|cap|limit)\b|\$"),
    "duration": re.compile(r"(?i)\bhow long\b|\bhow many (?:days|weeks|months|years|hours)\b|\bhow far in advance\b|"
                           r"\bhow much (?:prior |advance |written )*notice\b|\bwithin what\b|\bperiod\b|\bfor how\b"),
    "company": re.compile(r"(?i)\bwho\b|\bparties to\b|\bwhich (?:party|company|entity)\b|\bentity\b"),
    "preamble": re.compile(r"(?i)\bparties\b|\b(?:made|entered)\b|\beffective date\b|\bdated\b|\bincorporated\b|"
                           r"\borgani[sz]ed\b"),
}
# --------------------------------------------------------------------------- words

# Thousands separators are dropped so "12,500" and "12500" match; a decimal point is kept.
_TOKEN = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|[^\W\d_]+")

STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be been being before below between
both but by can could did do does doing down during each few for from further had has have having
he her here hers him his how i if in into is it its itself me more most my no nor not of off on
once only or other our ours out over own same she should so some such than that the their theirs
them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours s t
""".split())


def tokenize(text: str) -> list[str]:
    """Lowercase words and numbers, stopwords dropped: 'Within thirty (30) days of 2024?' ->
    ['within', 'thirty', '30', 'days', '2024']."""
    return [t.replace(",", "") for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


# derivational suffixes, longest first, with the fewest letters a word must keep
_DERIVATIONAL = (("ational", 4), ("ation", 4), ("ition", 4), ("ement", 4), ("ment", 3), ("ility", 4),
                 ("ance", 4), ("able", 3), ("ible", 4), ("ity", 4), ("ate", 4), ("ion", 4),
                 ("al", 4), ("ly", 5))
_KEEP_DOUBLE = ("ll", "ss", "zz")


def _strip_inflection(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if not re.search(r"[aeiouy]", stem):
                return word
            if len(stem) > 3 and stem[-1] == stem[-2] and stem[-2:] not in _KEEP_DOUBLE and stem[-1] not in "aeiou":
                return stem[:-1]  # submitted -> submit
            if stem.endswith(("at", "bl", "iz")):
                return stem + "e"  # terminated -> terminate
            if stem.endswith("i"):
                return stem[:-1] + "y"  # notified -> notify
            return stem
    return word


def stem(word: str) -> str:
    """A light suffix stripper for English contract words, so the forms of a word meet:
    govern/governs/governing/governed -> 'govern', terminate/termination -> 'termin',
    renewal/renewed -> 'renew', parties -> 'party', payment/payable -> 'pay', liability/liable ->
    'liabl'. Numbers and words of up to 3 letters are kept as they are."""
    if len(word) <= 3 or not word.isalpha():
        return word
    word = _strip_inflection(word)
    if word.startswith("government"):
        return "government"  # not "govern"
    for _ in range(2):  # confidentiality -> confidential -> confidenti
        for suffix, keep in _DERIVATIONAL:
            if word.endswith(suffix) and len(word) - len(suffix) >= keep:
                word = word[: -len(suffix)]
                if suffix == "ility":
                    word += "l"  # liability -> liabl, as liable
                break
        else:
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def index_terms(text: str, stemming: bool = False) -> list[str]:
    """The words of `text` as the index counts them: tokenize, then stem with `stemming`."""
    words = tokenize(text)
    return [stem(w) for w in words] if stemming else words


def query_terms(query: str, settings: RetrievalConfig = RetrievalConfig()) -> dict[str, float]:
    """The index terms of a query with their weights: a word counts as often as it occurs;
    legal stopwords are dropped (with `drop_legal_stopwords`, when something else is left); each
    word's EXPANSIONS come in at `expansion_weight`, unless the query has them already."""
    words = tokenize(query)
    weights: dict[str, float] = defaultdict(float)
    kept = [w for w in words if w not in LEGAL_STOPWORDS] if settings.drop_legal_stopwords else words
    for word in kept or words:
        weights[stem(word) if settings.stemming else word] += 1.0
    if settings.expansion_weight > 0:
        extra: dict[str, float] = {}
        for word in words:
            for related in EXPANSIONS.get(word, ()) or EXPANSIONS.get(_strip_inflection(word), ()):
                for term in index_terms(related, settings.stemming):
                    if term not in weights:
                        extra[term] = settings.expansion_weight
        weights.update(extra)
    return dict(weights)


def _bm25_class():
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        raise DocfinetuneError("BM25 retrieval needs rank-bm25: pip install rank-bm25") from None
    return BM25Okapi


class _Field:
    """BM25Okapi over one field of every chunk, as per-word postings: the chunks that hold the
    word and the word's BM25 weight there (idf times the term-frequency factor).

    BM25Okapi.get_scores looks every query word up in every chunk's counts (a Python loop over
    all chunks per word, ~7 ms a query at 3,000 chunks); here each word's postings are numpy
    arrays made once, so a query is a few vector additions (~0.1 ms); the scores are BM25Okapi's."""

    def __init__(self, tokenized: list[list[str]], k1: float, b: float) -> None:
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if not any(tokenized):
            return
        bm25 = _bm25_class()(tokenized, k1=k1, b=b)
        k1, b, avgdl = bm25.k1, bm25.b, bm25.avgdl
        rows: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for i, counts in enumerate(bm25.doc_freqs):
            for word, count in counts.items():
                ids, tfs = rows[word]
                ids.append(i)
                tfs.append(count)
        doc_len = np.asarray(bm25.doc_len, dtype=np.float64)
        idf = bm25.idf
        if bm25.average_idf <= 0:
            # A tiny workspace: at 1 or 2 chunks every word's BM25 idf, log((N - n + 0.5) / (n + 0.5)),
            # is <= 0 (rank_bm25 lifts negatives to 0.25 x the average, itself <= 0), so no chunk
            # matched anything. Lucene's idf, log(1 + ...) as for titles, is > 0 and still favours the
            # rarer word (2 chunks: 0.69 in one, 0.18 in both). Larger corpora keep BM25Okapi's.
            idf = {word: math.log(1 + (len(tokenized) - len(ids) + 0.5) / (len(ids) + 0.5))
                   for word, (ids, _) in rows.items()}
        for word, (ids, tfs) in rows.items():
            ids_array, tf = np.asarray(ids, dtype=np.int64), np.asarray(tfs, dtype=np.float64)
            factor = tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len[ids_array] / avgdl))
            self.postings[word] = (ids_array, idf[word] * factor)


class BM25Index:
    """The chunks of a workspace (or any list of chunks), searchable by BM25.

    `titles` maps a document id to its title (from_workspace reads them from source.json);
    without it, titles play no part. `settings`: the pipeline's `retrieval` section."""

    def __init__(self, chunks: Iterable[Chunk], titles: Mapping[str, str] | None = None,
                 settings: RetrievalConfig | None = None) -> None:
        self.chunks: list[Chunk] = list(chunks)
        self.settings = s = settings or RetrievalConfig()
        if not self.chunks:
            raise WorkspaceError("no chunks to search; ingest documents first (`docfinetune ingest FILE...`)")
        if s.heading_field:
            text_terms = [index_terms(c.text, s.stemming) for c in self.chunks]
            heading_terms = [index_terms(c.heading, s.stemming) for c in self.chunks]
        else:
            text_terms = [index_terms(f"{c.heading}\n{c.text}", s.stemming) for c in self.chunks]
            heading_terms = []
        if not any(text_terms) and not any(heading_terms):
            raise WorkspaceError(f"none of the {len(self.chunks)} chunks holds a searchable word")
        self._fields = [(1.0, _Field(text_terms, s.bm25_k1, s.bm25_b))]
        if heading_terms and s.heading_weight > 0:
            self._fields.append((s.heading_weight, _Field(heading_terms, s.bm25_k1, s.bm25_b)))
        cards = [i for i, c in enumerate(self.chunks) if is_card(c)]
        if cards and s.card_question_weight > 0:
            # idf among the cards' questions, not all chunks: the words every card asks weigh nothing
            questions = _Field([index_terms(card_question(self.chunks[i]), s.stemming) for i in cards],
                               s.bm25_k1, s.bm25_b)
            position = np.asarray(cards, dtype=np.int64)
            questions.postings = {w: (position[ids], v) for w, (ids, v) in questions.postings.items()}
            self._fields.append((s.card_question_weight, questions))
        self._types = _Field([[f"<{kind}>" for kind, pattern in ANSWER_TYPES.items() for _ in pattern.finditer(c.text)]
                              for c in self.chunks], s.bm25_k1, s.bm25_b) if s.answer_type_weight > 0 else None

        # Documents: each chunk's document number, and per title word the documents whose title
        # has it, with the word's idf over the titles (never negative).
        doc_ids = list(dict.fromkeys(c.doc_id for c in self.chunks))
        number = {d: i for i, d in enumerate(doc_ids)}
        self._doc_of = np.asarray([number[c.doc_id] for c in self.chunks], dtype=np.int64)
        self._documents = len(doc_ids)
        self._title_docs: dict[str, np.ndarray] = {}
        self._title_idf: dict[str, float] = {}
        by_word: dict[str, list[int]] = defaultdict(list)
        legal = LEGAL_STOPWORDS | {stem(w) for w in LEGAL_STOPWORDS}
        for doc_id, i in number.items():
            for word in set(index_terms((titles or {}).get(doc_id, ""), s.stemming)) - legal:
                by_word[word].append(i)
        for word, docs in by_word.items():
            self._title_docs[word] = np.asarray(docs, dtype=np.int64)
            self._title_idf[word] = math.log(1 + (len(doc_ids) - len(docs) + 0.5) / (len(docs) + 0.5))
        self._next = self._next_chunk_numbers()

    @classmethod
    def from_workspace(cls, workspace: Workspace, settings: RetrievalConfig | None = None,
                       held_out_cards: bool = True) -> "BM25Index":
        """Every chunk of every ingested document, and the fact cards of the last build (those of
        held-out facts too, unless `held_out_cards` is false: training leaves them out);
        WorkspaceError when there are no chunks."""
        documents, chunks = workspace.read_searchable(held_out_cards)
        if not chunks:
            raise WorkspaceError(f"{workspace.documents_dir}: the ingested documents have no chunks; "
                                 "re-ingest them (`docfinetune ingest FILE...`)")
        return cls(chunks, {d.doc_id: d.title for d in documents}, settings)

    def __len__(self) -> int:
        return len(self.chunks)

    def scores(self, query: str) -> np.ndarray:
        """Every chunk's score for `query` (a numpy array in chunk order); 0 for a chunk whose
        text and heading share no word with the query."""
        s = self.settings
        scores = np.zeros(len(self.chunks))
        title = np.zeros(self._documents)
        for term, weight in query_terms(query, s).items():
            title_docs = self._title_docs.get(term)
            for field_weight, field in self._fields:
                posting = field.postings.get(term)
                if posting is None:
                    continue
                ids, values = posting
                values = values * (weight * field_weight)
                if title_docs is not None and s.title_word_weight != 1.0:
                    values = np.where(np.isin(self._doc_of[ids], title_docs), values * s.title_word_weight, values)
                scores[ids] += values  # a word's chunk ids are distinct
            if title_docs is not None and s.title_weight > 0:
                title[title_docs] += weight * self._title_idf[term]
        bonus = np.zeros(len(self.chunks))
        if title.any():
            bonus += s.title_weight * title[self._doc_of]
        if self._types is not None:
            for kind, cue in ANSWER_TYPE_CUES.items():
                posting = self._types.postings.get(f"<{kind}>")
                if posting is not None and cue.search(query):
                    bonus[posting[0]] += s.answer_type_weight * posting[1]
        matched = scores > 0  # the bonuses only reorder chunks that share a word with the query
        scores[matched] += bonus[matched]
        return scores

    def search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """The `k` best chunks for `query`, best first, with their scores; chunks that share no
        word with the query are left out, so fewer (or none) may come back. Ties keep document
        order. With `neighbour_tail_chars`, a hit that stops mid-sentence carries the start of the
        next chunk up to that sentence's end."""
        if k < 1:
            return []
        scores = self.scores(query)
        matches = np.flatnonzero(scores > 0)
        best = matches[np.lexsort((matches, -scores[matches]))][:k]
        return [(self._with_tail(int(i)), float(scores[i])) for i in best]

    def _next_chunk_numbers(self) -> list[int | None]:
        """Each chunk's following chunk of the same document in this index, or None."""
        position = {(c.doc_id, c.index): i for i, c in enumerate(self.chunks)}
        return [position.get((c.doc_id, c.index + 1)) for c in self.chunks]

    def _with_tail(self, i: int) -> Chunk:
        chunk, following = self.chunks[i], self._next[i]
        limit = self.settings.neighbour_tail_chars
        if limit <= 0 or following is None or _SENTENCE_END.search(chunk.text):
            return chunk
        after = self.chunks[following]
        skip = max(0, chunk.char_end - after.char_start)  # chunks that overlap: only what is new
        end = _FIRST_SENTENCE_END.search(after.text, skip, skip + limit)
        if end:
            tail = after.text[skip : end.end()]
        else:  # no sentence end within reach: whole words up to the limit
            tail = after.text[skip : skip + limit + 1].rsplit(None, 1)[0]
        tail = tail.strip()
        if not tail:
            return chunk
        return replace(chunk, text=f"{chunk.text.rstrip()} {tail}", page_end=after.page_end,
                       char_end=max(chunk.char_end, after.char_start + skip + len(tail)))


_SENTENCE_END = re.compile(r"[.!?;][\"'”’)\]]*\s*$")
_FIRST_SENTENCE_END = re.compile(r"[.!?;][\"'”’)\]]*(?=\s|$)")
