import os
import sys

from devstack.cli import main

try:
    sys.exit(main())
except BrokenPipeError:
    # The reader went away (`python -m devstack status | head -1`): stop quietly, as Unix tools do,
    # without the traceback Python would print while flushing stdout at exit.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)
