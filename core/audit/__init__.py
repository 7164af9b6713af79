"""The hash-chained audit log on the ground floor: record events, verify the chain, anchor its head outside.

Sign-in (core.auth), the model registry (core.models.registry), the review queue (core.review) and the domains all
record here; nothing in this package imports those callers.
"""
