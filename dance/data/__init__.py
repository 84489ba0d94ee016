"""Data layer: image decoding, label CSVs, the decoded-image cache, grouped splits, loaders."""
