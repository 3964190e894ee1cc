"""The `llm` Q&A generator against a real loopback HTTP server, and with the tiny random Mistral."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from docfinetune.build.generators.llm import LLMQAGenerator, encode_prompt, parse_reply, render_prompt
from docfinetune.core.config import LLMQAConfig
from docfinetune.core.errors import DocfinetuneError
from docfinetune.core.generate import generate
from docfinetune.core.records import Chunk, Document

REPO = Path(__file__).resolve().parent.parent
MAX_REQUESTS = 60  # the fake server refuses more, so a retry loop gone wrong fails fast
DOC = Document("supply", "SUPPLY AGREEMENT", "supply.pdf")

# Chunk heading -> how the fake endpoint answers (it sees the heading in the prompt).
TEXTS = {
    "good": "12. Governing Law. This Agreement is governed by the laws of the State of Vermont. "
            "Buyer shall pay Supplier an annual fee of $25,000.",
    "fenced": "3. Term. The Initial Term is two (2) years from the Effective Date.",
    "trailing": "4. Termination. Either party may terminate on thirty (30) days' written notice.",
    "garbage": "5. Notices. Notices shall be in writing.",
    "flaky": "6. Warranty. Supplier warrants the Products for twelve (12) months from delivery.",
    "ratelimited": "7. Insurance. Supplier shall keep insurance of $2,000,000 per occurrence.",
}


def make_chunks(doc_id: str = "supply", headings=tuple(TEXTS)) -> list[Chunk]:
    chunks, start = [], 0
    for i, heading in enumerate(headings):
        text = TEXTS[heading]
        chunks.append(Chunk(f"{doc_id}:{i:04d}", doc_id, i, 1, 1, start, start + len(text), heading, text))
        start += len(text) - 10
    return chunks


def fact_in(text: str) -> str:
    """The answer the fake model 'copies' from a chunk: its last amount, period or state."""
    found = re.findall(r"\$[\d,]+|\b[a-z]+ \(\d+\) (?:years|days|months)|State of \w+", text)
    return found[-1]


def good_facts(title: str, text: str) -> list[dict]:
    answer = fact_in(text)
    return [
        {"answer": answer, "questions": [
            f"What does the {title} say about {answer.split()[0]}?",
            f"According to the {title}, what is stated in this clause?",
            f"In the {title}, which figure or name is given here?",
            f"In the {title}, which figure or name is given here?",  # a repeated phrasing: dropped
        ]},
        {"answer": "", "questions": [f"What is blank in the {title}?"]},  # empty answer: dropped
    ]


def reply_for(mode: str, title: str, text: str) -> str:
    if mode == "garbage":
        return "I am sorry, I cannot find any facts in this passage."
    facts = good_facts(title, text)
    if mode == "fenced":
        return "Here are the facts you asked for:\n```json\n" + json.dumps(facts, indent=1) + "\n```\nHope it helps!"
    if mode == "trailing":
        return json.dumps(facts)[:-1].replace('"]}', '",]},') + ",]"
    return json.dumps(facts)


class FakeEndpoint:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1, answering from the prompt."""

    def __init__(self, always_status: int | None = None):
        self.always_status = always_status
        self.requests: list[dict] = []  # {"path", "auth", "body"} of every request
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with endpoint.lock:
                    endpoint.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                              "body": body})
                    count = len(endpoint.requests)
                try:
                    status, payload = endpoint.answer(self.path, body, count)
                except Exception as err:  # a bug in the fake: a 400 fails the test at once
                    status, payload = 400, {"error": {"message": f"fake endpoint: {err!r}"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, path: str, body: dict, count: int) -> tuple[int, dict]:
        if count > MAX_REQUESTS:
            return 400, {"error": {"message": "too many requests for one test"}}
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        if self.always_status:
            return self.always_status, {"error": {"message": "model 'nope' does not exist"}}
        prompt = body["messages"][-1]["content"]
        title = re.search(r"^Document: (.*)$", prompt, re.M).group(1)
        mode = re.search(r"^Section: (.*)$", prompt, re.M).group(1)
        text = re.search(r'Text:\n"""\n(.*?)\n"""', prompt, re.S).group(1)
        with self.lock:
            self.attempts[mode] = self.attempts.get(mode, 0) + 1
            first = self.attempts[mode] == 1
        if mode == "flaky" and first:
            return 500, {"error": {"message": "internal error"}}
        if mode == "ratelimited" and first:
            return 429, {"error": {"message": "slow down"}}
        return 200, {"id": "x", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": reply_for(mode, title, text)}}]}

    def __enter__(self) -> "FakeEndpoint":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def endpoint():
    with FakeEndpoint() as server:
        yield server


def http_config(url: str, **overrides) -> LLMQAConfig:
    values = dict(url=url, api_model="fake-7b", api_key_env="DOCFT_TEST_KEY", pairs_per_chunk=3,
                  batch_size=3, max_new_tokens=256, retries=2, backoff_s=0.01, timeout_s=5.0)
    return LLMQAConfig(**{**values, **overrides})


# --------------------------------------------------------------------------- HTTP backend


def test_http_generates_repairs_retries_and_resumes_from_cache(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCFT_TEST_KEY", "sk-test")
    chunks = make_chunks()
    progress: list[tuple[int, int]] = []
    gen = LLMQAGenerator(http_config(endpoint.url), tmp_path / "cache", on_progress=lambda d, t: progress.append((d, t)))
    pairs = gen.generate([DOC], chunks)

    # Every chunk but the garbage one gives one fact of three distinct phrasings.
    assert gen.stats["chunks"] == 6
    assert gen.stats["requests"] == 8 and gen.stats["retries"] == 2  # one 500 and one 429, each retried once
    assert gen.stats["cache_hits"] == 0
    assert gen.stats["repaired"] == 1 and gen.stats["skipped"] == 1
    assert gen.stats["facts"] == 5 and gen.stats["pairs"] == 15 == len(pairs)
    assert gen.stats["seconds"] >= 0
    by_fact: dict[str, list] = {}
    for p in pairs:
        by_fact.setdefault(p.fact_id, []).append(p)
    expected_ids = {f"supply:llm:{c.index:04d}:0" for c in chunks if c.heading != "garbage"}
    assert set(by_fact) == expected_ids
    for fact_id, group in by_fact.items():
        chunk = chunks[int(fact_id.split(":")[2])]
        assert len({p.question for p in group}) == 3  # several phrasings kept together
        assert {p.answer for p in group} == {fact_in(chunk.text)}
        assert all(p.source_chunk_ids == [chunk.chunk_id] and p.doc_id == "supply" for p in group)
        assert all(p.generator == "llm" and p.field == "llm" and p.meta["answer_in_text"] for p in group)
        assert all("SUPPLY AGREEMENT" in p.question for p in group)  # questions name the document
        assert [p.meta["phrasing"] for p in group] == [0, 1, 2]
    assert [p.fact_id for p in pairs] == sorted(p.fact_id for p in pairs)  # chunk order, not finish order

    # What the endpoint saw: the OpenAI route, the key, the model and limits from the config.
    assert {r["path"] for r in endpoint.requests} == {"/v1/chat/completions"}
    assert {r["auth"] for r in endpoint.requests} == {"Bearer sk-test"}
    assert {r["body"]["model"] for r in endpoint.requests} == {"fake-7b"}
    assert {r["body"]["max_tokens"] for r in endpoint.requests} == {256}
    assert "up to 3 facts" in endpoint.requests[0]["body"]["messages"][0]["content"]
    assert progress[0] == (0, 6) and progress[-1] == (6, 6)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 6

    # A second run over the same chunks asks nothing and gives the same pairs.
    sent = len(endpoint.requests)
    again = LLMQAGenerator(http_config(endpoint.url), tmp_path / "cache")
    pairs2 = again.generate([DOC], chunks)
    assert len(endpoint.requests) == sent
    assert again.stats["requests"] == 0 and again.stats["cache_hits"] == 6
    assert [p.to_dict() for p in pairs2] == [p.to_dict() for p in pairs]

    # Anything that shapes the reply is in the cache key: another pairs_per_chunk asks again.
    third = LLMQAGenerator(http_config(endpoint.url, pairs_per_chunk=2), tmp_path / "cache")
    third.generate([DOC], chunks[:1])
    assert third.stats["requests"] == 1 and third.stats["cache_hits"] == 0


def test_http_resumes_an_interrupted_run(endpoint, tmp_path):
    chunks = make_chunks(headings=("good", "fenced", "trailing"))
    LLMQAGenerator(http_config(endpoint.url), tmp_path / "cache").generate([DOC], chunks[:2])
    gen = LLMQAGenerator(http_config(endpoint.url), tmp_path / "cache")
    gen.generate([DOC], chunks)
    assert gen.stats["cache_hits"] == 2 and gen.stats["requests"] == 1


def test_http_client_error_fails_fast(tmp_path):
    with FakeEndpoint(always_status=400) as server:
        gen = LLMQAGenerator(http_config(server.url, retries=3), tmp_path / "cache")
        with pytest.raises(DocfinetuneError) as err:
            gen.generate([DOC], make_chunks(headings=("good",)))
        assert len(server.requests) == 1  # no retry on a 4xx other than 429
    message = str(err.value)
    assert f"{server.url}/chat/completions" in message and "HTTP 400" in message
    assert "does not exist" in message and "llm.api_model" in message
    assert not list((tmp_path / "cache").glob("*.json"))


def test_http_server_down_retries_then_names_the_url(tmp_path):
    with FakeEndpoint() as server:
        url = server.url  # a port that nobody listens on once the server is closed
    gen = LLMQAGenerator(http_config(url, retries=2), tmp_path / "cache")
    with pytest.raises(DocfinetuneError, match=r"no reply after 3 attempts.*server running"):
        gen.generate([DOC], make_chunks(headings=("good",)))
    assert gen.stats["retries"] == 2 and gen.stats["requests"] == 3


def test_http_backend_does_not_import_torch(endpoint, tmp_path):
    script = f"""
import sys
from pathlib import Path
from docfinetune.core.config import LLMQAConfig
from docfinetune.build.generators.llm import LLMQAGenerator
from docfinetune.core.records import Chunk, Document
chunk = Chunk("d:0000", "d", 0, 1, 1, 0, 60, "good", {TEXTS["good"]!r})
gen = LLMQAGenerator(LLMQAConfig(url={endpoint.url!r}, api_model="m"), Path({str(tmp_path)!r}))
pairs = gen.generate([Document("d", "SUPPLY AGREEMENT", "d.pdf")], [chunk])
assert len(pairs) == 3, pairs
assert "torch" not in sys.modules and "transformers" not in sys.modules
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


# --------------------------------------------------------------------------- parsing replies

GOOD = [{"answer": "Vermont", "questions": ["Q1 of the X?", "Q2 of the X?"]}]


@pytest.mark.parametrize("reply, repaired", [
    (json.dumps(GOOD), False),
    ("Sure:\n```json\n" + json.dumps(GOOD) + "\n```\nAnything else?", False),
    ("As Section [2] says: " + json.dumps(GOOD) + " (end)", False),
    ('[{"answer": "Vermont", "questions": ["Q1 of the X?", "Q2 of the X?",],},]', True),
    ("[{'answer': 'Vermont', 'questions': ['Q1 of the X?', 'Q2 of the X?']}]", True),
    ('[{"answer": "Vermont", "questions": ["Q1 of the X?", "Q2 of the X?"]}, {"answer": "Ohio", "quest', True),
    ('{"facts": ' + json.dumps(GOOD) + "}", True),
    (json.dumps(GOOD[0]), True),
    ('[{"question": "Q1 of the X?", "answer": "Vermont"}, {"question": "Q2 of the X?", "answer": "vermont"}]', True),
    ("<think>maybe [1]?</think>" + json.dumps(GOOD), False),
])
def test_parse_reply_reads_and_repairs(reply, repaired):
    facts, was_repaired = parse_reply(reply)
    assert facts == GOOD and was_repaired is repaired


@pytest.mark.parametrize("reply", ["", "No facts here.", "[1, 2, 3]", '{"note": "none"}', "{broken", "```\nnot json\n```"])
def test_parse_reply_skips_what_it_cannot_read(reply):
    assert parse_reply(reply) == (None, False)


def test_parse_reply_drops_empty_answers_and_questions():
    facts, _ = parse_reply('[{"answer": " ", "questions": ["Q?"]}, {"answer": "A", "questions": []}, '
                           '{"answer": "B", "questions": ["", "Q?", "q?"]}]')
    assert facts == [{"answer": "B", "questions": ["Q?"]}]
    assert parse_reply("[]") == ([], False)  # the model found no fact: not a skip


def test_prompt_names_document_and_asks_for_phrasings():
    prompt = render_prompt("SUPPLY AGREEMENT", "3. Term", "The term is two years.", 4)
    assert "Document: SUPPLY AGREEMENT" in prompt and "Section: 3. Term" in prompt
    assert "up to 4 facts" in prompt and '"questions": [' in prompt and "The term is two years." in prompt
    assert 'name the document ("SUPPLY AGREEMENT")' in prompt


# --------------------------------------------------------------------------- transformers backend


def test_local_model_runs_skips_garbage_and_uses_cache(tiny_model_dir, tmp_path):
    config = LLMQAConfig(model=str(tiny_model_dir), pairs_per_chunk=2, batch_size=2, max_new_tokens=8)
    chunks = make_chunks(headings=("good", "fenced", "garbage"))
    progress: list[tuple[int, int]] = []
    gen = LLMQAGenerator(config, tmp_path / "cache", on_progress=lambda d, t: progress.append((d, t)))
    pairs = gen.generate([DOC], chunks)
    # A random model writes no JSON: every reply is skipped, none is lost from the cache.
    assert pairs == []
    assert gen.stats["chunks"] == 3 and gen.stats["requests"] == 3 and gen.stats["skipped"] == 3
    assert progress[-1] == (3, 3)
    cached = [json.loads(p.read_text())["reply"] for p in (tmp_path / "cache").glob("*.json")]
    assert len(cached) == 3 and all(isinstance(r, str) and "Document:" not in r for r in cached)

    again = LLMQAGenerator(config, tmp_path / "cache")
    assert again.generate([DOC], chunks) == []
    assert again.stats["requests"] == 0 and again.stats["cache_hits"] == 3 and again.stats["skipped"] == 3
    assert again._local is None  # all from the cache: the model was never loaded


def test_batched_generation_equals_one_at_a_time(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    prompts = [render_prompt("SUPPLY AGREEMENT", h, TEXTS[h] * (1 + i), 3) for i, h in enumerate(TEXTS)]
    lengths = {len(tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                  return_dict=False)) for p in prompts}
    assert len(lengths) == len(prompts)  # all different, so the batch really is padded

    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    batched = generate(model, tokenizer, encoded, max_new_tokens=12, stop_at_line_end=False)
    single = [generate(model, tokenizer, [e], max_new_tokens=12, stop_at_line_end=False)[0] for e in encoded]
    assert batched == single
    assert all(reply.strip() for reply in batched)
    assert len(set(batched)) > 1  # the prompts steer the (random) model: not one constant string


def test_local_model_missing_names_the_setting(tmp_path):
    gen = LLMQAGenerator(LLMQAConfig(model="no-such-org/no-such-model"), tmp_path / "cache")
    with pytest.raises(DocfinetuneError, match=r"llm.model 'no-such-org/no-such-model'.*--allow-download"):
        gen.generate([DOC], make_chunks(headings=("good",)))
