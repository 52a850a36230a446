"""Dataset intake: loaders, image validation, profile, split, bundled examples."""
