"""``python -m trunkline`` runs the CLI."""

import sys

from trunkline.cli import main

sys.exit(main())
