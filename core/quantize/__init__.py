"""Export merged models to ONNX Runtime GenAI folders at fp32, fp16, int8, int4 (RTN) and GPTQ, and compare them."""
