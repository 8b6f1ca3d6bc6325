"""`python -m plateread ...` runs the same command line as the `plateread` script."""
import sys

from .cli.main import main

sys.exit(main())
