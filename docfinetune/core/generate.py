"""Answers by batched greedy generation: the one path used by training-time evaluation,
`ask` and `eval`.

Prompts are left-padded with an attention mask, so a batch gives the same answers as one
question at a time; generation stops at the end of the first non-empty line.
"""

from __future__ import annotations


def format_prompt(template: str, question: str) -> str:
    return template.format(question=question.strip())


class _StopAtLineEnd:
    """Stop a row once its new text holds a line break after some non-space text."""

    def __init__(self, tokenizer, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        return torch.tensor([("\n" in t.lstrip()) for t in texts], device=input_ids.device)


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def greedy_settings(tokenizer, prompt_length: int, max_new_tokens: int) -> dict:
    """The `generate()` keyword arguments of every answer (batched here, streamed by `ask`):
    greedy, at most `max_new_tokens`, stopping at the end of the first non-empty line."""
    from transformers import StoppingCriteriaList

    return {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id,
            "stopping_criteria": StoppingCriteriaList([_StopAtLineEnd(tokenizer, prompt_length)])}


def answer_questions(model, tokenizer, questions: list[str], template: str, batch_size: int,
                     max_new_tokens: int) -> list[str]:
    """Greedy answers to `questions`, in order. Questions are batched by prompt length so
    little padding is needed."""
    import torch

    prompts = [format_prompt(template, q) for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: dict[int, str] = {}
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(device)
            length = encoded["input_ids"].shape[1]
            with torch.no_grad():
                output = model.generate(**encoded, **greedy_settings(tokenizer, length, max_new_tokens))
            texts = tokenizer.batch_decode(output[:, length:], skip_special_tokens=True)
            answers.update({i: first_line(t) for i, t in zip(batch, texts)})
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return [answers[i] for i in range(len(prompts))]
