"""``python -m harness.docs_gen --write|--check [DIR]``."""

import sys

from harness.docs_gen import main

sys.exit(main())
