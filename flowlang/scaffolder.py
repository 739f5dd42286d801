"""`python -m flowlang.scaffolder scaffold FILE -o DIR`: the tutorial's Step 7, which is
`python -m app scaffold FILE -o DIR` (the command line of `app.cli`, by another name)."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
