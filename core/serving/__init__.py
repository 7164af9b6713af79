"""The one serving layer: ONNX Runtime GenAI engine, dynamic batcher, OpenAI-compatible HTTP API and client."""
