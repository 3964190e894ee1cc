"""docfinetune: turn your own documents into a language model that has learned them."""

__version__ = "0.1.0"
