"""Training layer: the fit loop, train / cross-validate / probe, augmentation, DDP."""
