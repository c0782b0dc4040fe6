"""Typed readers of environment variables, shared by the settings modules."""

from __future__ import annotations

import os


def env_bool(name: str, default: bool) -> bool:
    """True for 1/true/yes/on; an unset or empty variable keeps the default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list, blanks dropped."""
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]
