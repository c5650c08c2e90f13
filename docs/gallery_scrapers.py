"""A sphinx-gallery image scraper for the figures ``tnml.plot`` returns.

``tnml.plot`` builds figures without pyplot (no global state, safe in threads and servers),
so sphinx-gallery's matplotlib scraper, which collects pyplot's open figures, does not see
them. This scraper saves every such figure a tutorial holds in a variable, once.
"""

from __future__ import annotations

from typing import Any

# Figures already seen, per tutorial; kept referenced so an identity is never reused.
_SEEN: dict[str, list[Any]] = {}


def tnml_figures(
    block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any], **_: Any
) -> str:
    """Save the new pyplot-free figures of a code block; return their reST."""
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = _SEEN.setdefault(str(block_vars["src_file"]), [])
    new = []
    for value in block_vars["example_globals"].values():
        if not isinstance(value, Figure) or any(value is old for old in seen):
            continue
        seen.append(value)
        # A pyplot figure is the matplotlib scraper's (this one runs first, before it closes
        # them); a figure without a pyplot manager is tnml.plot's.
        if value.canvas.manager is None:
            new.append(value)
    paths = []
    for figure, path in zip(new, block_vars["image_path_iterator"], strict=False):
        figure.savefig(path, dpi=100, bbox_inches="tight")
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
