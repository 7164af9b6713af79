"""Training data: dataset records and their formats (records.py) and PII masking (pii.py)."""
