"""The planner's version (one place; ``pyproject.toml`` carries the same, checked by a test)."""

__version__ = "0.1.0"
