"""Transfer vs budget at d_model 256 alone: budget.py's grid for one width (12 runs), so that it
fits in one sitting; budget.py reuses its runs.

    lengthgen sweep experiments/transfer/budget_d256.py --dir sweeps --reach reverse_add --reuse sweeps
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from budget import grid  # noqa: E402


def sweep() -> dict:
    """The steps grid at d_model 256, 3 seeds."""
    return grid([256], name="transfer-budget-d256")
