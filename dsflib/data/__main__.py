"""``python -m dsflib.data download NAME [--data-dir D]``: see :mod:`dsflib.data.download`."""
import sys

from .download import main

if __name__ == "__main__":
    sys.exit(main())
