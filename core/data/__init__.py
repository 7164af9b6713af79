"""Dataset records and formats, PII masking, filtering and augmentation for training data."""
