"""`python -m IWUOSegmentationLib.cli`: the `iwuo` command."""

import sys

from .main import main

sys.exit(main())
