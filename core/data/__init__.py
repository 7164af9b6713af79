"""Dataset records and formats, the three-tier filter, augmentation, and PII masking."""
