"""Session fixtures for tests that need a model; registered in conftest.py via pytest_plugins.

Both are built once per test session (about a second) in a temporary folder; treat them as
read-only (copy the folder first to change it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_mistral, build_tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """The tiny byte-level BPE tokenizer (also saved, see `tiny_model_dir`)."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> Path:
    """A local model path: a 2-layer random Mistral (safetensors) with the tiny tokenizer."""
    return build_tiny_mistral(tmp_path_factory.mktemp("tiny-mistral"), tiny_tokenizer)
