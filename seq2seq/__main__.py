"""`python -m seq2seq train|eval|predict ...` — see seq2seq/cli.py."""

import sys

from .cli import main

sys.exit(main())
