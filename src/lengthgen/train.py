"""The trainer: AdamW under a learning-rate schedule (lengthgen.schedules), loss on answer + <eos>,
evaluation, checkpoints."""

from __future__ import annotations

import contextlib
import math
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed
from .config import TrainConfig
from .data import Batch, batch_rng, collate, collate_packed, length_groups
from .errors import UserError
from .evaluate import EvalRow, check_positions_fit, evaluate, format_table
from .experiment import Experiment
from .runtime import autocast, set_threads
from .schedules import SCHEDULES
from .store.checkpoint import (
    Loaded,
    apply_checkpoint,
    apply_trainer_state,
    checkpoint_dirs,
    checkpoint_step,
    clean_leftovers,
    estimate_checkpoint_bytes,
    newest_good_checkpoint,
    save_checkpoint,
)
from .store.eval_plot import plot_length_curve
from .store.fileio import atomic_write_text, check_free_space, check_writable, describe_os_error, exclusive_lock
from .store.rundir import LOCK_NAME, RunDir
from .store.trackers import open_trackers


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
    """AdamW with weight decay on matrices only, plus its LambdaLR schedule."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel: 1.2x faster steps at d_model 128 on CPU (benchmarks/, docs/performance.md),
    # same numbers within float rounding (tests/test_loss_reference.py).
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=device.type in ("cpu", "cuda"))
    schedule = SCHEDULES[cfg.schedule]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step, cfg))
    return optimizer, scheduler


def _packing(batch: Batch) -> dict:
    """The forward's keyword for a packed batch (none for a padded one, which every model takes)."""
    return {} if batch.segments is None else {"segments": batch.segments}


def answer_loss(model, batch: Batch) -> torch.Tensor:
    """Mean cross entropy over answer and <eos> targets."""
    logits = model(batch.tokens, batch.position_ids, select=batch.loss_mask, **_packing(batch))
    return F.cross_entropy(logits.float(), batch.targets[batch.loss_mask])


def ppc_loss(model, batch: Batch, weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predictive Position Coupling loss: (total, token CE, position-ID CE).

    Both cross entropies are means over the same answer and <eos> targets; total = token +
    weight * position. Teacher forcing on both streams: the inputs sit at the data's IDs and the
    position head's target is the next token's ID (batch.position_targets). With weight 0 the
    total equals `answer_loss` exactly.
    """
    if batch.position_targets is None:
        raise ValueError("ppc_loss needs batch.position_targets (build the batch with collate)")
    logits, position_logits = model(batch.tokens, batch.position_ids, select=batch.loss_mask, return_positions=True,
                                    **_packing(batch))
    token = F.cross_entropy(logits.float(), batch.targets[batch.loss_mask])
    position = F.cross_entropy(position_logits.float(), batch.position_targets[batch.loss_mask])
    return token + weight * position, token, position


class Trainer:
    """Trains one experiment into one run directory (resumable).

    In a data-parallel job there is one Trainer per rank: each trains on its shards of every
    global batch, and only rank 0 (`self.main`) writes the run directory.
    """

    def __init__(self, exp: Experiment, run: RunDir, quiet: bool = False):
        self.exp, self.run = exp, run
        self.main = distributed.is_main()
        self.quiet = quiet or not self.main  # one progress bar per job
        self.cfg = exp.cfg
        set_threads(self.cfg.train.threads)
        self.shards = distributed.shard_range(self.cfg.data.shards)
        self.optimizer, self.scheduler = build_optimizer(exp.model, self.cfg.train, exp.device)
        self.mixture = exp.mixture()
        step_fn = distributed.wrap_model(exp.model, exp.device)
        self.step_fn = torch.compile(step_fn, dynamic=True) if self.cfg.train.compile else step_fn
        # PPC: train the position head too and log its loss beside the token loss.
        self.ppc = getattr(exp.model, "position_head", None) is not None
        self.start_step = 0
        self.step = 0  # the step being finished (logged, evaluated, checkpointed), for error messages
        self.last_checkpoint: int | None = None
        self.trackers: list = []  # opened by fit, on the main process (store/trackers.py)
        # Training seconds of earlier sessions (up to the checkpoint resumed from) and the start of
        # this one: done.json reports their sum.
        self.seconds_before = 0.0
        self.session_start = time.perf_counter()
        # Losses since the last log line. Checkpoints carry them, so a run resumed between two log
        # steps logs the same averages as an uninterrupted one.
        self.losses: list[float] = []
        self.parts: list[list[float]] = []  # PPC: (token loss, position loss) per step

    def resume(self) -> None:
        """Continue from the newest intact checkpoint, dropping results logged after it.

        Damaged checkpoints (checksum mismatch, truncated or missing files) are moved aside with a
        warning on stderr and the previous one is tried; when none is left the run starts over.
        Rank 0 alone reads the checkpoint and hands weights and trainer state to the other ranks,
        so they need no access to the run directory.
        """
        loaded = distributed.on_main(self._load_newest)
        if loaded is None:
            return
        if not self.main:
            apply_trainer_state(loaded.trainer, self.optimizer, self.scheduler, loaded.path)
        distributed.broadcast_module(self.exp.model)
        self.start_step = self.step = self.last_checkpoint = loaded.step
        self.seconds_before = float(loaded.state.get("seconds", 0.0))
        pending = loaded.state.get("pending", {})
        self.losses = [float(x) for x in pending.get("losses", [])]
        self.parts = [[float(x) for x in pair] for pair in pending.get("parts", [])]

    def _load_newest(self) -> Loaded | None:
        """Rank 0's half of `resume`: load the newest intact checkpoint and truncate the logs to it."""
        root = self.run.checkpoint_root
        clean_leftovers(root)  # safe: run_training holds the run's lock
        had_checkpoints = bool(checkpoint_dirs(root))
        loaded = newest_good_checkpoint(root, warn=_warn)
        if loaded is None:  # none written (or none intact): start over, keeping no stale rows
            if had_checkpoints:
                _warn(f"warning: no intact checkpoint is left in {str(root)!r}; starting {self.cfg.name} over "
                      "from step 0")
            self.run.truncate_after(0)
            return None
        apply_checkpoint(self.exp.model, self.optimizer, self.scheduler, loaded)
        self.run.truncate_after(loaded.step)
        return loaded

    def elapsed(self) -> float:
        """Training seconds of this run over all sessions (earlier ones up to their last checkpoint)."""
        return self.seconds_before + time.perf_counter() - self.session_start

    def kept(self) -> str:
        """Which checkpoint survives a failure, for error messages."""
        if self.last_checkpoint is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint (step {self.last_checkpoint}) is kept in {str(self.run.checkpoint_root)!r}"

    def _batch(self, step: int) -> list[Batch]:
        """This rank's part of step `step`'s global batch, on the CPU: its data shards, as
        `train.micro_batches` batches of similar lengths (one batch, in shard order, by default)."""
        per_shard = self.cfg.data.batch_size // self.cfg.data.shards
        examples = [ex for shard in self.shards
                    for ex in self.mixture.sample(batch_rng(self.cfg.seed.data, step, shard), per_shard)]
        tc = self.cfg.train
        groups = [examples] if tc.micro_batches == 1 else length_groups(examples, tc.micro_batches)
        if tc.pack:
            return [collate_packed(group, self.exp.vocab, tc.pack_length) for group in groups]
        return [collate(group, self.exp.vocab) for group in groups]

    def _log(self, record: dict) -> None:
        if not self.main:
            return
        self.run.append_metrics(record)
        for tracker in self.trackers:
            tracker.metrics(record["step"], record)

    def evaluate(self, step: int) -> list[EvalRow]:
        """Evaluate on the config's fixed sets (every rank a share) and append to eval.csv."""
        cfg, exp = self.cfg, self.exp
        rows = evaluate(exp.model, exp.specs, cfg.eval.length_list(), n=cfg.eval.n, eval_seed=cfg.seed.eval,
                        policy=cfg.positions.eval, settings=cfg.positions.settings(), vocab=exp.vocab,
                        mode=cfg.eval.mode, batch_size=cfg.eval.batch_size, device=exp.device,
                        precision=exp.precision, step=step)
        if not self.main:
            return rows
        self.run.append_eval(rows)
        for tracker in self.trackers:
            tracker.evaluation(step, rows)
        return rows

    def checkpoint(self, step: int) -> None:
        """Save weights, optimizer, scheduler and RNG state for `step`."""
        if self.main:  # the other ranks hold the same weights and optimizer state
            state = {"seconds": round(self.elapsed(), 3), "pending": {"losses": self.losses, "parts": self.parts}}
            save_checkpoint(self.run.checkpoint_root, step, self.exp.model, self.optimizer, self.scheduler,
                            self.cfg.train.keep_checkpoints, extra={"vocab.json": self.exp.vocab.to_json()},
                            state=state)
        self.last_checkpoint = step

    def fit(self) -> list[EvalRow]:
        """Train to cfg.train.steps; evaluate and checkpoint on schedule and at the end, then draw
        eval.png; metrics and evaluations also go to the configured trackers."""
        if self.main:
            self.trackers = open_trackers(self.cfg.train.trackers, self.run.path, self.cfg, self.start_step)
        try:
            return self._fit()
        finally:
            for tracker in self.trackers:
                tracker.close()

    def _fit(self) -> list[EvalRow]:
        tc, model = self.cfg.train, self.exp.model
        model.train()
        bar = tqdm(total=tc.steps, initial=self.start_step, disable=self.quiet, dynamic_ncols=True,
                   mininterval=1.0, desc=self.cfg.name)
        self.session_start = time.perf_counter()
        tokens, tick = 0, time.perf_counter()
        losses, parts = self.losses, self.parts
        world = distributed.world_size()
        snapshots = set(tc.snapshot_steps)
        for step in range(self.start_step, tc.steps):
            micro = self._batch(step)
            counts = [int(b.loss_mask.sum()) for b in micro]
            # Answer tokens (the loss's denominator) and input tokens of the whole global batch.
            answers, inputs = distributed.all_reduce_counts([sum(counts), sum(b.num_tokens for b in micro)])
            reported = 0.0
            for index, (host_batch, count) in enumerate(zip(micro, counts)):
                share = count / answers  # 1.0 for one batch in a single process
                batch = host_batch.to(self.exp.device)
                # Gradients accumulate over the micro-batches; ranks synchronize them once, at the last.
                with distributed.no_sync(self.step_fn, index < len(micro) - 1):
                    with autocast(self.exp.device, self.exp.precision):
                        if self.ppc:
                            loss, token_loss, position_loss = ppc_loss(self.step_fn, batch, tc.position_loss_weight)
                        else:
                            loss = answer_loss(self.step_fn, batch)
                    # Each loss is a mean over its micro-batch's answer tokens: weighted by their share
                    # of the global batch's, the parts sum over micro-batches and ranks to the mean over
                    # the global batch, and DDP averages (sum / world) gradients.
                    (loss * (share * world)).backward()
                reported = reported + torch.stack(
                    [loss, token_loss, position_loss] if self.ppc else [loss]).detach() * share
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                       tc.grad_clip if tc.grad_clip > 0 else math.inf)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            # One device sync for the global loss (its parts under PPC) and the gradient norm, which DDP's
            # synchronized gradients make the same on every rank, so all ranks take the same decisions.
            value, *split, norm = torch.cat([distributed.all_reduce_sum(reported), grad_norm.reshape(1)]).tolist()
            # A non-finite gradient norm with a finite loss has already made the weights non-finite:
            # stop before they can be evaluated or checkpointed.
            if not (math.isfinite(value) and math.isfinite(norm)):
                what = f"loss became non-finite ({value})" if not math.isfinite(value) else \
                    f"gradient norm became non-finite ({norm})"
                raise UserError(f"training diverged at step {step + 1}: the {what}; {self.kept()}")
            if self.ppc:
                parts.append(split)
            losses.append(value)
            tokens += inputs
            done = self.step = step + 1
            if done % tc.log_every == 0 or done == tc.steps:
                elapsed = time.perf_counter() - tick
                record = {"step": done, "loss": sum(losses) / len(losses), "lr": self.scheduler.get_last_lr()[0],
                          "grad_norm": float(grad_norm), "tokens_per_s": tokens / max(elapsed, 1e-9)}
                if self.ppc:  # `loss` above is the total that is optimized
                    record["token_loss"] = sum(p[0] for p in parts) / len(parts)
                    record["position_loss"] = sum(p[1] for p in parts) / len(parts)
                self._log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
                tokens, tick = 0, time.perf_counter()
                losses.clear()
                parts.clear()
            bar.update(1)
            snapshot = done in snapshots
            if (snapshot or tc.eval_every and done % tc.eval_every == 0) and done != tc.steps:
                self.evaluate(done)
            if (snapshot or tc.checkpoint_every and done % tc.checkpoint_every == 0) and done != tc.steps:
                self.checkpoint(done)
        bar.close()
        saved, rows = distributed.on_main(self._final_state)
        if not saved:
            self.checkpoint(tc.steps)
        if rows is None:
            rows = self.evaluate(tc.steps)
        if self.main and rows:
            train_max = {v.name: s.lengths[1] for s in self.exp.specs for v in s.eval_variants()}
            plot = plot_length_curve(rows, train_max, self.run.path / "eval.png", title=self.cfg.name)
            for tracker in self.trackers:
                tracker.files([plot, self.run.path / "eval.csv"])
        return rows

    def _final_state(self) -> tuple[bool, list[EvalRow] | None]:
        """Rank 0, at the end: whether the final checkpoint exists, and the final evaluation rows if
        a resumed run that had already finished training needs no new evaluation."""
        final_step = self.cfg.train.steps
        existing = checkpoint_dirs(self.run.checkpoint_root)
        saved = bool(existing) and checkpoint_step(existing[-1]) == final_step
        evaluated = [r for r in self.run.read_eval() if r.step == final_step]
        return saved, (evaluated if self.start_step >= final_step and evaluated else None)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Room for metrics, evaluation tables, TensorBoard events and plots beside the checkpoints.
LOG_ROOM = 8 * 2**20


def check_disk(run: RunDir, exp: Experiment) -> None:
    """Before training: the run directory takes a write, and its disk has room for the checkpoints.

    keep_checkpoints checkpoints are kept and one more is written before the oldest is deleted.
    """
    check_writable(run.path)
    keep = exp.cfg.train.keep_checkpoints
    size = estimate_checkpoint_bytes(exp.model)
    check_free_space(run.path, (keep + 1) * size + LOG_ROOM,
                     f"{keep} checkpoints of about {size / 2**20:.1f} MiB, one more while writing, and logs")


def run_training(exp: Experiment, run: RunDir, resume: bool = False, quiet: bool = False) -> list[EvalRow]:
    """Write the run's metadata, train (resuming if asked), return the final evaluation rows.

    Holds the run directory's lock throughout, so two processes never train one run. A disk that
    fills up or a file that cannot be written ends with a UserError naming the step and the
    checkpoint that was kept. In a data-parallel job every rank calls this; rank 0 alone touches
    the run directory, and losing contact with another rank is a UserError too.
    """
    cfg = exp.cfg
    check_positions_fit(exp.model, exp.specs, cfg.eval.length_list(), cfg.seed.eval, cfg.positions.eval,
                        cfg.positions.settings(), cfg.eval.n)
    main = distributed.is_main()
    with contextlib.ExitStack() as held:
        distributed.on_main(lambda: _claim(run, exp, held))
        trainer = None
        try:
            distributed.on_main(lambda: _write_metadata(run, exp))
            trainer = Trainer(exp, run, quiet=quiet)
            if resume:
                trainer.resume()
            rows = trainer.fit()
            if main:
                run.mark_done(steps=exp.cfg.train.steps, seconds=round(trainer.elapsed(), 2))
        except OSError as err:
            where = f"training {cfg.name} at step {trainer.step}" if trainer is not None else f"starting {cfg.name}"
            kept = trainer.kept() if trainer is not None else "nothing was trained"
            raise UserError(f"{describe_os_error(err, where)}; {kept}; free some space (or fix the directory) "
                            "and resume") from None
        except (RuntimeError, distributed.Stopped) as err:
            if not distributed.is_lost_rank(err):
                raise
            where = f"at step {trainer.step}" if trainer is not None else "before training"
            kept = trainer.kept() if trainer is not None else "nothing was trained"
            raise UserError(f"rank {distributed.rank()} of {distributed.world_size()} stopped {where}: "
                            f"{distributed.lost_rank_reason(err)}; the launcher's report names the process that "
                            f"failed first; {kept}; run the same command with --resume") from None
    if not quiet and main:
        print(format_table(rows))
    return rows


def _claim(run: RunDir, exp: Experiment, held: contextlib.ExitStack) -> None:
    """Rank 0, before training: the run directory takes writes, is ours (locked), and has room."""
    check_writable(run.path)  # before the lock file is created in it
    held.enter_context(exclusive_lock(run.path / LOCK_NAME, f"run directory {str(run.path)!r}"))
    check_disk(run, exp)


def _write_metadata(run: RunDir, exp: Experiment) -> None:
    """Rank 0: the resolved config, the environment, the vocabulary, and any files the model
    describes itself with (`run_files()`: a pretrained model's source, token map and HF config)."""
    run.write_config(exp.cfg)
    run.write_environment(device=str(exp.device), precision=exp.precision, attention=exp.model.cfg.attention,
                          parameters=exp.model.num_parameters(), processes=distributed.world_size())
    exp.vocab.save(run.path / "vocab.json")
    for name, text in getattr(exp.model, "run_files", dict)().items():
        atomic_write_text(run.path / name, text)
