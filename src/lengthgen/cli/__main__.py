"""`python -m lengthgen.cli ...` (and `torchrun -m lengthgen.cli ...`): the `lengthgen` command."""

import sys

from .main import main

sys.exit(main())
