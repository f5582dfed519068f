"""Runnable example apps, one per web framework (run them from the repository root)."""
