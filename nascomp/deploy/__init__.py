"""Deployment files: ONNX export checked with ONNX Runtime, the one ORT session builder, int8 quantization."""
