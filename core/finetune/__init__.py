"""The fine-tuning engine: configs, methods (full, LoRA, adapters, prompt tuning, ...), recipe, FGM, loading."""
