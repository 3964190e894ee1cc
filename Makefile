# The two set-up commands of the README: `make demo` (the main job on the sample contract)
# and `make test`. Both create .venv and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
# This CPU-only machine has torch 2.13.0's CPU wheel locally; elsewhere set TORCH_SPEC, e.g.
# TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" or a CUDA build.
TORCH_SPEC ?= torch==2.13.0
WORKSPACE ?= docfinetune-workspace
BIN = $(VENV)/bin

.PHONY: install demo test benchmarks clean

$(BIN)/docfinetune: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/docfinetune

DF = $(BIN)/docfinetune --workspace $(WORKSPACE)
SAMPLE = sample_docs/quillmere_msa

# The main job on the sample contract: ingest, train (which builds the data first), eval on
# the hand-written questions (base, base+RAG, fine-tuned, fine-tuned+RAG: what was learned,
# and which system `ask` should use), then ask with that system and its source.
demo: install
	$(DF) ingest $(SAMPLE).pdf
	$(DF) train --pipeline cpu-demo
	$(DF) eval --questions $(SAMPLE).questions.jsonl --extraction-chunks 0
	$(DF) ask --sources 1 "Which state's law governs the Master Services Agreement?"

test: install
	$(BIN)/ruff check docfinetune tests benchmarks
	$(BIN)/python -m pytest

benchmarks: install
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/qa_coverage.py

clean:
	rm -rf $(VENV) $(WORKSPACE)
