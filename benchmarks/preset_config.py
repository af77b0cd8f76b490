"""Print the resolved config of one run of a preset's sweep as YAML, ready for `lengthgen train`.

    python benchmarks/preset_config.py b-transfer-arith --scale paper --point 0 > point.yaml
    lengthgen train point.yaml train.steps=2000 --device cuda

`--point` counts the sweep's grid points (0-based, in the sweep's order) at the first seed (or
`--seed`); `--list` prints the points' run names instead. Used by `benchmarks/gpu_check.sh`.
"""

from __future__ import annotations

import argparse
import sys

from lengthgen.errors import UserError
from lengthgen.presets import get_preset
from lengthgen.sweeps.spec import expand


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("preset")
    p.add_argument("--scale", default="cpu")
    p.add_argument("--point", type=int, default=0)
    p.add_argument("--seed", type=int, help="default: the sweep's first seed")
    p.add_argument("--list", action="store_true", help="print the run names of the points and stop")
    args = p.parse_args()
    try:
        spec = get_preset(args.preset).spec(args.scale)
        plans = expand(spec)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seed = spec.seeds[0] if args.seed is None else args.seed
    plans = [plan for plan in plans if plan.seed == seed]
    if args.list:
        print("\n".join(f"{i}  {plan.name}" for i, plan in enumerate(plans)))
        return 0
    if not plans or not 0 <= args.point < len(plans):
        print(f"error: --point must be in 0..{len(plans) - 1} (with seed {seed})", file=sys.stderr)
        return 2
    print(plans[args.point].config.to_yaml(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
