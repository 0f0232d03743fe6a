"""`python -m taskrunner` runs the command line."""

import sys

from taskrunner.cli import main

if __name__ == "__main__":
    sys.exit(main())
