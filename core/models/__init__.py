"""Base models: the packaged default, local folders, hub ids, and tiny random models for tests."""
