"""The ``tnml`` command-line tool (Typer), thin over the library.

``tnml train``, ``tnml evaluate``, ``tnml predict`` and ``tnml info``; see ``tnml --help``.
"""

from __future__ import annotations

from tnml.cli.commands import app, main

__all__ = ["app", "main"]
