"""Training data: records and formats (records.py), PII masking (pii.py), the three-tier filter (filter.py with
syntax.py, dedup.py, language.py, decontam.py, report.py), augmentation (augment.py, substitute.py, translate.py)
and the seam through which domains add their checks and vocabularies (checks.py)."""
