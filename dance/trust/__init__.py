"""Trust layer: what predictions say about the model (reports, calibration, label issues)."""
