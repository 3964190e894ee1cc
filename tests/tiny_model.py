"""A tiny real tokenizer and a 2-layer random Mistral, built offline in about a second.

Shared by every test that needs a model (Q&A generation, training, asking). Both are made
from scratch here, deterministically, so no test touches the model hub:

- the tokenizer is a byte-level BPE (any text encodes, decoding round-trips exactly) trained
  on the contract-like text below, with <unk>/<s>/</s>/<pad> and a small Jinja chat template;
- the model is MistralForCausalLM with 2 layers, hidden 64, 4 heads, 2 KV heads
  (~100k parameters), seeded random weights, saved as safetensors beside the tokenizer, so the
  folder is a "local model path" for `AutoModelForCausalLM` / `AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

SEED = 1234
VOCAB_SIZE = 640  # 256 bytes + 4 specials + ~380 merges: short words become one token
SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}

# Role-tagged turns, each closed by </s>; the generation prompt opens the assistant's turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# A few hundred words of contract-like English (fictional parties) to train the merges on.
TRAINING_TEXT = """\
MASTER SERVICES AGREEMENT
This Master Services Agreement (the "Agreement") is made as of the 3rd day of March, 2021
(the "Effective Date") by and between Quillfeather Widgets, Inc., a Delaware corporation
("Supplier"), and Brambleton Retail LLC, an Ohio limited liability company ("Buyer").
1. Definitions. "Products" means the widgets listed in Exhibit A, including spare parts.
"Territory" means the State of Ohio. "Confidential Information" means any information
disclosed by one party to the other party that is marked as confidential.
2. Fees. Buyer shall pay Supplier an annual license fee of $25,000.00 per year, due each
January. Late payments bear interest at one percent (1%) per month until paid in full.
3. Term. The term of this Agreement shall begin on the Effective Date and continue for two
(2) years thereafter (the "Initial Term"). This Agreement shall automatically renew for
successive one (1) year terms unless either party gives written notice of non-renewal at
least sixty (60) days prior to the end of the then-current term.
4. Termination. Either party may terminate this Agreement upon thirty (30) days' prior
written notice to the other party. The termination of this Agreement does not end accrued
payment duties or the obligations of confidentiality.
5. Confidentiality. Each party shall keep the Confidential Information of the other party
secret for five (5) years after the end of this Agreement and shall use it only to perform
this Agreement.
6. Warranties. Supplier warrants that the Products will be free from defects in materials and
workmanship for twelve (12) months from delivery. Supplier shall repair or replace any
defective Product at no cost to Buyer.
7. Limitation of Liability. Neither party shall be liable for indirect, incidental or
consequential damages. The total liability of either party shall not exceed the fees paid in
the twelve (12) months before the claim.
8. Notices. Notices shall be in writing and delivered by hand, by courier or by email to the
addresses set out above, and are effective on receipt.
9. Assignment. Neither party may assign this Agreement without the prior written consent of
the other party, which shall not be unreasonably withheld.
10. Force Majeure. Neither party is liable for delay caused by events beyond its reasonable
control, including fire, flood, strike, war or failure of public utilities.
11. Insurance. Supplier shall maintain general liability insurance of at least $2,000,000 per
occurrence during the term of this Agreement.
12. Governing Law. This Agreement shall be governed by and construed in accordance with the
laws of the State of Vermont, without regard to its conflict of laws principles. The parties
submit to the exclusive jurisdiction of the state and federal courts located in Burlington,
Vermont.
IN WITNESS WHEREOF, the parties have executed this Agreement as of the Effective Date.
Question: What is the governing law of the Master Services Agreement? Answer: Vermont.
Question: Who is the Supplier under the agreement? Answer: Quillfeather Widgets, Inc.
Question: How long is the Initial Term? Answer: two (2) years.
[{"answer": "thirty (30) days", "questions": ["What notice ends the agreement?"]}]
"""


def build_tiny_tokenizer(directory: Path | None = None):
    """A byte-level BPE `PreTrainedTokenizerFast` with special tokens and a chat template.

    Deterministic: the same text and settings give the same merges. Saved with
    `save_pretrained(directory)` when a directory is given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    backend = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(TRAINING_TEXT.splitlines(), trainer=trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    # Plain `tokenizer(text)` starts with <s>, as Mistral's does; the chat template writes its own.
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, backend.token_to_id(bos))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, chat_template=CHAT_TEMPLATE, model_max_length=2048, **SPECIAL_TOKENS
    )
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(directory)
    return tokenizer


def build_tiny_mistral(directory: Path, tokenizer=None) -> Path:
    """A 2-layer random MistralForCausalLM saved (safetensors) with `tokenizer` in `directory`.

    Returns `directory`, a local model path. The weights depend only on SEED and the vocabulary.
    """
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    directory = Path(directory)
    tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer()
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        sliding_window=None,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(SEED)
    try:
        model = MistralForCausalLM(config).eval()
    finally:
        torch.random.set_rng_state(state)  # leave the caller's random stream as it was
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_gemma_tokenizer(directory: Path):
    """A `GemmaTokenizer`, the embedded model's class ('▁' for spaces, byte fallback, <bos>
    first, left padding), with a small BPE vocabulary trained on the text above and one added
    special and one added plain token; saved with `save_pretrained(directory)`.

    AutoTokenizer rebuilds this class from the saved vocabulary and merges in Python, as it
    does the real Gemma's 262k tokens; `models.load_tokenizer` reads tokenizer.json instead.
    """
    import json

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]  # what byte fallback spells unseen characters with
    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE + 256, special_tokens=specials + byte_tokens,
                                  show_progress=False)
    backend.train_from_iterator(TRAINING_TEXT.splitlines(), trainer=trainer)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(backend.to_str())["model"]["merges"]]
    tokenizer = GemmaTokenizer(vocab=backend.get_vocab(), merges=merges, add_bos_token=True)
    tokenizer.add_tokens(["<start_of_turn>"], special_tokens=True)
    tokenizer.add_tokens(["[multimodal]"])
    Path(directory).mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    return tokenizer
