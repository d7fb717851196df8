"""nsbox runtime: the engine and the low-level container runtime."""

__version__ = "0.1.0"  # keep in step with pyproject.toml (tests/unit/test_version.py checks)
