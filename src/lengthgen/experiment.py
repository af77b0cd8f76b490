"""Everything a config turns into before training or evaluation: vocab, tasks, model, device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import ExperimentConfig
from .data import TaskMixture, TaskSpec, build_spec
from .errors import UserError
from .model.plugins import build_model
from .model.transformer import Decoder
from .runtime import resolve_device, resolve_precision
from .vocab import Vocab


@dataclass
class Experiment:
    """The built pieces of one experiment."""

    cfg: ExperimentConfig
    vocab: Vocab
    specs: list[TaskSpec]
    model: Decoder
    device: torch.device
    precision: str

    def mixture(self) -> TaskMixture:
        """The training mixture under the training position policy."""
        return TaskMixture(self.specs, self.cfg.positions.train, self.cfg.positions.settings())


def build_experiment(cfg: ExperimentConfig, vocab: Vocab | None = None, device: str | None = None) -> Experiment:
    """Validate the tasks, seed and build the model, pick device and precision."""
    vocab = vocab or Vocab.default()
    specs = [build_spec(entry.model_dump(), i, cfg.data.markers, cfg.data.marker_repeat)
             for i, entry in enumerate(cfg.data.resolved_tasks())]
    dev = resolve_device(device or cfg.train.device)
    torch.manual_seed(cfg.seed.model)
    try:
        model = build_model(cfg.model, len(vocab), cfg.positions.max_position).to(dev)  # model.arch picks the class
    except (MemoryError, RuntimeError) as err:  # a mistyped width asks for exabytes
        if not isinstance(err, MemoryError) and "alloc" not in str(err).lower() and "out of memory" not in str(err):
            raise
        m = cfg.model
        raise UserError(f"not enough memory on {dev} to build the model (model.layers={m.layers}, d_model={m.d_model}, "
                        f"d_ff={m.d_ff}, positions.max_position={cfg.positions.max_position})") from None
    precision = resolve_precision(cfg.train.precision, dev)
    check_position_head(cfg, specs, model)
    return Experiment(cfg, vocab, specs, model, dev, precision)


def check_position_head(cfg: ExperimentConfig, specs: list[TaskSpec], model: torch.nn.Module, n: int = 64) -> None:
    """With model.position_head (PPC), fail early, with the fix named, when the model has no
    position head or a training example needs a position ID the head cannot predict.

    The head predicts IDs 0..max_position-1 whatever the encoding (even RoPE, which has no bound
    of its own). The top ID is that of the unshifted coupled IDs at each task's longest training
    length: coupled_random_offset only shifts within what fits. Evaluation lengths are checked
    by `evaluate.check_positions_fit`.
    """
    if not cfg.model.position_head:
        return
    if getattr(model, "position_head", None) is None:
        raise UserError(f"model.position_head (PPC) is not supported by the {type(model).__name__} model "
                        f"(model.arch {getattr(cfg.model, 'arch', 'transformer')!r}); use the transformer")
    limit = cfg.positions.max_position
    for spec in specs:
        if not spec.task.supports_coupling:
            raise UserError(f"model.position_head (PPC) needs coupled position IDs, and task {spec.task.name!r} "
                            "does not define them")
        hi = spec.lengths[1]
        # Several examples: some tasks' answer lengths (hence top IDs) vary at a fixed length.
        examples = spec.sample(np.random.default_rng(0), n, hi)
        top = max(int(ex.coupled.as_array().max()) for ex in examples)
        if top >= limit:
            raise UserError(f"model.position_head (PPC) predicts IDs 0..{limit - 1}, but {spec.task.name} at training "
                            f"length {hi} needs coupled ID {top}; raise positions.max_position above {top}")
