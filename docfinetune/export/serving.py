"""The prompt the model was trained with, written where serving tools read it.

Training shows a question as `generation.prompt_template` ("Question: {question}\\nAnswer:") and
an open-book question as `generation.rag_template` with retrieved chunks as {context}. A served
model must be asked the same way, so an export carries both as

- a Jinja `chat_template` (tokenizer_config.json and chat_template.jinja), which transformers'
  `apply_chat_template`, vLLM's chat endpoint and llama.cpp read: the last user message is the
  question, a system message (if any) is the {context} of the RAG prompt, an assistant message
  after the question is its answer (" answer" + eos, as in training);
- an Ollama `Modelfile` whose Go TEMPLATE does the same with {{ .Prompt }} and {{ .System }},
  greedy, stopping at the end of the first line as `ask` does.

Literal text of the templates is written as quoted string expressions, so braces, newlines or
quotes in a recipe's template never become template syntax (and transformers' trim_blocks
cannot eat a newline).
"""

from __future__ import annotations

import json
import string

from docfinetune.core.config import GenerationConfig


def _pieces(template: str) -> list[tuple[str, str | None]]:
    """A str.format template as (literal text, placeholder name or None) pairs, "{{" read as "{"."""
    return [(literal, name) for literal, name, _, _ in string.Formatter().parse(template)]


def _fill(template: str, fields: dict[str, str], literal) -> str:
    """`template` with each literal run passed through `literal` and each {name} replaced by
    fields[name] (template source already)."""
    out = []
    for text, name in _pieces(template):
        if text:
            out.append(literal(text))
        if name is not None:
            out.append(fields[name])
    return "".join(out)


def _jinja_text(text: str) -> str:
    # Jinja string literals are read with Python's unicode-escape: JSON's escapes all decode.
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"


def chat_template(generation: GenerationConfig, adds_bos: bool) -> str:
    """The Jinja chat template of the training prompt. `adds_bos`: the tokenizer puts its bos
    first when it encodes text (training's rows start with it); apply_chat_template does not add
    special tokens, so the template writes it."""
    prompt = _fill(generation.prompt_template, {"question": "{{ ns.question | trim }}"}, _jinja_text)
    rag = _fill(generation.rag_template, {"context": "{{ ns.context }}", "prompt": prompt}, _jinja_text)
    return "".join([
        "{%- set ns = namespace(context='', question='', answer=none) -%}",
        "{%- for m in messages -%}",
        "{%- if m['role'] == 'system' -%}{%- set ns.context = m['content'] -%}",
        "{%- elif m['role'] == 'user' -%}{%- set ns.question = m['content'] -%}{%- set ns.answer = none -%}",
        "{%- elif m['role'] == 'assistant' -%}{%- set ns.answer = m['content'] -%}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{{ bos_token }}" if adds_bos else "",
        "{%- if ns.context -%}", rag, "{%- else -%}", prompt, "{%- endif -%}",
        "{%- if ns.answer is not none -%}{{ ' ' ~ (ns.answer | trim) ~ eos_token }}{%- endif -%}",
    ])


def _go_text(text: str) -> str:
    # Plain text unless it holds a brace (which could join the next action's "{{") or the
    # Modelfile's closing quotes; then a Go string constant.
    if "{" in text or "}" in text or '"""' in text:
        return "{{ " + json.dumps(text) + " }}"
    return text


def modelfile(generation: GenerationConfig, source: str, adapter: str | None = None) -> str:
    """An Ollama Modelfile: FROM `source` (a folder of safetensors, a GGUF file or an Ollama
    model), the adapter folder if any, the training prompt as TEMPLATE, greedy decoding that
    stops at the end of the first line (what `ask` answers), at most max_new_tokens."""
    prompt = _fill(generation.prompt_template, {"question": "{{ .Prompt }}"}, _go_text)
    rag = _fill(generation.rag_template, {"context": "{{ .System }}", "prompt": prompt}, _go_text)
    lines = [
        "# Ollama: `ollama create NAME -f Modelfile` in this folder, then `ollama run NAME \"question\"`.",
        "# A system message is the retrieved context of an open-book question (generation.rag_template).",
        f"FROM {source}",
        *([f"ADAPTER {adapter}"] if adapter else []),
        f'TEMPLATE """{{{{ if .System }}}}{rag}{{{{ else }}}}{prompt}{{{{ end }}}}"""',
        "PARAMETER temperature 0",
        f"PARAMETER num_predict {generation.max_new_tokens}",
        '# answers end at the first line break, as in training-time evaluation, `ask` and `eval`',
        'PARAMETER stop """',
        '"""',
    ]
    return "\n".join(lines) + "\n"
