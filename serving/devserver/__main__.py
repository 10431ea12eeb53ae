"""``python -m serving.devserver``: the same as ``deepfake-devserver``."""

import sys

from serving.devserver.cli import main

sys.exit(main())
