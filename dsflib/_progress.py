"""Progress bars: notebook widgets where ipywidgets is installed, plain text bars otherwise.

``tqdm.auto`` warns (``IProgress not found``) inside a notebook without ipywidgets, and that warning
would end up in every executed chapter; the text bar says the same thing without it.
"""
try:
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
