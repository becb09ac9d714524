"""Sphinx configuration: the Markdown pages (MyST) and the API reference from the docstrings.

Built in CI with ``sphinx-build -W --keep-going -n`` (tox -e docs): any warning, broken link or
unresolved reference fails the build.
"""

from __future__ import annotations

import importlib.metadata

project = "waauth"
author = "The waauth developers"
copyright = "2026, the waauth developers"
release = importlib.metadata.version("waauth")

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "furo"
html_title = "waauth"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}

# Every reference must resolve (nitpicky), except to libraries whose inventories are not
# fetched: the build runs where only package registries are reachable.
nitpicky = True
_EXTERNAL = (
    "psycopg|psycopg_pool|orjson|cryptography|watchfiles|asyncio|os|pathlib|datetime"
    "|collections|typing|types|threading|prometheus_client|http"
)
_BARE = (
    "Path|PathLike|datetime|Iterable|Mapping|Any|TracebackType|T|R|Generator|Coroutine"
    "|Callable|Awaitable|Operation|AsyncOpener"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({_EXTERNAL})(\..*)?"),
    (r"py:.*", rf"({_BARE})"),
    (r"py:class", r"(waauth\.(\w+\.)*)?_\w+(\.\w+)*"),  # private names
    (r"py:class", r"waauth\.testing\._\w+\.\w+"),
    (r"py:class", r".*\[.*"),  # pieces of generic annotations such as dict[str, int]
]
