"""Variable assignment, round 2 (issue 26 item 3): MQAR's CPU recipe on a-ppc's variable assignment.

Round 1 (`va.py`, 3,000 steps of 64) left every method on the bag-of-values plateau beyond one
statement: with every variable queried the answers are a permutation of the values, the
elimination shortcut MQAR sat on (docs/experiments.md, "Learned at zoology's budget"). MQAR was
learned at CPU scale with zoology's ingredients together, so this applies them here:
- 512 examples a step;
- statements drawn as P(n) ~ 1/n (`length_bias: 1`);
- the two-token shift (`model.token_shift: 2`), so each value token carries its name;
- training on 1-4 statements (2x = 8, 4x = 16), as a-coupling trains reverse addition on 1-4.
PPC (1 layer + log(keys), a-ppc's coupled model) beside NoPE and RoPE (2 layers), seeds 0-1,
3,000 steps. A frozen record (written 2026-12-06 before its run).

    lengthgen sweep experiments/coupling/va_recipe.py --dir sweeps
"""

from lengthgen.presets import get_preset
from lengthgen.sweeps.spec import expand

PPC = {"model.encoding": "learned", "model.position_head": True, "positions.train": "coupled_random_offset",
       "positions.eval": "coupled", "model.layers": 1, "model.logit_scaling": "log_keys"}
METHODS = {"ppc": PPC, "nope": {"model.encoding": "nope"}, "rope": {"model.encoding": "rope"}}


def sweep() -> dict:
    """Each method at the MQAR recipe on a-ppc's variable-assignment base, trained on 1-4 statements."""
    plan = next(p for p in expand(get_preset("a-ppc").spec("cpu-v1"))
                if p.config.data.tasks[0].task == "variable_assignment" and p.config.model.encoding == "rope")
    base = plan.config.model_dump(mode="json")
    base.pop("name")
    base["data"]["batch_size"] = 512
    base["data"]["tasks"][0].update(lengths=[1, 4], length_bias=1.0)
    base["model"]["token_shift"] = 2
    base["train"].update(steps=3000, eval_every=500, checkpoint_every=250)
    base["eval"]["lengths"] = [1, 2, 3, 4, 6, 8, 12, 16]
    return {"name": "coupling-va-recipe", "base": base, "seeds": [0, 1], "points": list(METHODS.values())}
