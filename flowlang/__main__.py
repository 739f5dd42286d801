"""`python -m flowlang COMMAND ...`: the same commands as `python -m app` (and `flowlang`)."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
