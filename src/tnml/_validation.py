"""Argument checks shared by every layer; each raises a one-line InvalidInputError."""

from __future__ import annotations

import numbers

from tnml.exceptions import InvalidInputError


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer (a Python or NumPy int, not a bool)
    ``>= minimum``; else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
