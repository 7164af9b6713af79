"""finmed core: shared machinery for fine-tuning, export, serving, retrieval and review (no domain knowledge)."""

__version__ = "0.1.0"
