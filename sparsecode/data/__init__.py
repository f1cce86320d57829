"""Data loaders and synthetic data generators (all offline)."""
