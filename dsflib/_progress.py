"""Progress bars: notebook widgets where ipywidgets is installed, plain text bars otherwise.

``tqdm.auto`` warns (``IProgress not found``) inside a notebook without ipywidgets, and that warning
would end up in every executed chapter; the text bar says the same thing without it.

``TQDM_DISABLE=1`` in the environment turns every bar off, also one created with an explicit
``disable=False`` (tqdm itself lets the argument win): the book executes its chapters that way, so
progress stays on the command line and out of the pages.
"""
import os

try:
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm as _tqdm
except ImportError:
    from tqdm.std import tqdm as _tqdm

__all__ = ["tqdm", "progress_off"]


def progress_off() -> bool:
    """True when ``$TQDM_DISABLE`` asks for no progress bars."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes", "on"}


class tqdm(_tqdm):  # noqa: N801 - a drop-in for tqdm
    """tqdm that also honours ``TQDM_DISABLE=1`` when the caller passes ``disable=False``."""

    def __init__(self, *args, **kwargs):
        if progress_off():
            kwargs["disable"] = True
        super().__init__(*args, **kwargs)
