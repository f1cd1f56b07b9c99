"""A small Sphinx extension for the book's HTML (listed in ``_config.yml`` under ``extra_extensions``).

Jupyter Book 1.x always loads ``sphinx_thebe``; under Sphinx 7 its inline configuration script
(``const THEBE_JS_URL = ...``) lands twice in every page, and the second copy throws
``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` in the reader's browser. The book
has no live-code (thebe) buttons, so this extension disconnects sphinx-thebe's script injection;
the browser test (``browser_tests/``) fails on any console error, this one included.
"""
from __future__ import annotations

__all__ = ["setup"]


def _drop_thebe_scripts(app) -> None:
    try:
        from sphinx_thebe import init_thebe_core
    except ImportError:
        return
    for listener in list(app.events.listeners.get("env-before-read-docs", [])):
        if listener.handler is init_thebe_core:
            app.disconnect(listener.id)


def setup(app):
    # builder-inited comes after every extension's setup() and before env-before-read-docs
    app.connect("builder-inited", _drop_thebe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
