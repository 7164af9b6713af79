"""Retrieval of similar past cases and prior reports: offline embeddings and vector stores behind one protocol."""
