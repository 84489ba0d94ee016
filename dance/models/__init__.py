"""Model layer: backbone registry, checkpoints (safetensors + JSON sidecar), preprocessing, ONNX export."""
