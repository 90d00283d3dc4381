"""``python -m dkt_stack.cli`` is ``dkt-stack``."""

import sys

from dkt_stack.cli import main

sys.exit(main())
