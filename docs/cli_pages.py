"""Write the command-line reference (``cli.rst``) from the ``tnml`` command itself.

Typer builds the command on its own copy of click, which sphinx-click does not recognise, so
the page is rendered here from the same objects ``tnml CMD --help`` reads: every command's
help text, its arguments and its options with their types and defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tnml.cli import app

INTRO = """\
Command-line reference
======================

Every command of ``tnml``, read from the command itself (``tnml CMD --help`` prints the same).
Bad input (a missing file, NaN, a file that is not a tnml model, an option out of range)
prints one line ``error: ...`` and exits with code 2; Ctrl-C during training writes a
checkpoint that ``--resume`` continues.
"""


def _rows(command: Any, context: Any) -> list[tuple[str, str]]:
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(context)
        if record is None:  # a positional argument without help text
            record = (param.human_readable_name, "")
        names, text = record
        if getattr(param, "required", False) and "required" not in text:
            text = f"{text} [required]".strip()
        rows.append((names, text))
    return rows


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("*", r"\*").replace("|", r"\|").replace("`", r"\`") or " "


def _section(path: str, command: Any, parent: Any, level: str) -> list[str]:
    context = command.context_class(command, info_name=path.split()[-1], parent=parent)
    title = f"``{path}``"
    lines = [title, level * len(title), ""]
    help_text = (command.help or "").strip()
    if help_text:
        lines += [" ".join(paragraph.split()) + "\n" for paragraph in help_text.split("\n\n")]
    usage = " ".join(command.collect_usage_pieces(context))
    lines += [".. code-block:: text", "", f"   {path} {usage}", ""]
    rows = _rows(command, context)
    if rows:
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 35 65", ""]
        lines += ["   * - Argument or option", "     - Meaning"]
        for names, text in rows:
            lines += [f"   * - ``{names}``", f"     - {_cell(text)}"]
        lines.append("")
    subcommands = getattr(command, "commands", {})
    for name in command.list_commands(context) if subcommands else []:
        sub_level = "-" if level == "=" else "~"
        lines += _section(f"{path} {name}", subcommands[name], context, sub_level)
    return lines


def write_cli_page(path: Path) -> None:
    """Write the reference of every ``tnml`` command to ``path`` (reStructuredText)."""
    root = typer.main.get_command(app)
    context = root.context_class(root, info_name="tnml")
    lines = [INTRO, ".. code-block:: text", "", "   tnml [OPTIONS] COMMAND [ARGS]...", ""]
    for names, text in _rows(root, context):
        lines += [f"- ``{names}``: {_cell(text)}"]
    lines.append("")
    for name in root.list_commands(context):
        lines += _section(f"tnml {name}", root.commands[name], context, "-")
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
