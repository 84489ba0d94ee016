"""Inference layer: predictions for images, submissions, assessment on labelled sets, Grad-CAM."""
