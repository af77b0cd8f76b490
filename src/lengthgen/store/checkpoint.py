"""Checkpoints: safetensors weights, optimizer/scheduler/RNG state, written atomically, checksummed.

A checkpoint is `step_XXXXXXX/` holding model.safetensors, trainer.pt (tensors only), any extra
files (vocab.json) and state.json. state.json is written last and records the step, the
trainer's bookkeeping and the size and SHA-256 of every other file, so a checkpoint is complete
when state.json exists and intact when every file matches it. The directory is assembled under a
temporary name and renamed into place, and old checkpoints are renamed away before they are
deleted, so a process killed at any moment never leaves a half-written or half-deleted
checkpoint under a `step_*` name.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model
from safetensors.torch import save as safetensors_save

from ..errors import UserError
from .fileio import UMASK, fsync_dir, sha256_file

STATE = "state.json"
WEIGHTS = "model.safetensors"
TRAINER = "trainer.pt"


class CorruptCheckpoint(UserError):
    """A checkpoint file is missing, truncated or altered; resuming may fall back to an older one."""


def checkpoint_step(path: Path) -> int:
    """The step of a `step_XXXXXXX` directory."""
    return int(path.name.split("_")[1])


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under root (those with a state.json), oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step_*") if p.name[5:].isdigit() and (p / STATE).is_file()]
    return sorted(found, key=checkpoint_step)


def _discard(path: Path) -> None:
    """Delete a checkpoint directory: rename it out of the `step_*` namespace first, so a crash
    halfway through the deletion cannot leave something that looks like a checkpoint."""
    trash = path.with_name(f".trash-{path.name}")
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def clean_leftovers(root: Path) -> None:
    """Remove temporary and half-deleted directories a killed process left in `root`.

    Only call this while holding the run's lock: another writer's temporary directory would
    look the same.
    """
    if not root.is_dir():
        return
    for path in list(root.glob(".tmp-*")) + list(root.glob(".trash-*")):
        shutil.rmtree(path, ignore_errors=True)


def _write_file(path: Path, data: bytes) -> None:
    """Write bytes and flush them to disk; a full disk raises OSError here, not later."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def weights_bytes(model: torch.nn.Module) -> bytes:
    """The model's weights in safetensors format, tied tensors stored once (as `save_model` does).

    Serialized in memory (like `trainer_bytes`, whose torch writer would report a full disk as a
    RuntimeError): every file then goes through one checked write that raises OSError, and the
    checksum covers the bytes that were meant to be on disk, not whatever reached it.
    """
    tensors, metadata, seen = {}, {}, {}
    for name, tensor in model.state_dict().items():
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tensor.stride())
        if key in seen:  # a tied weight: load_model restores it from the kept name
            metadata[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().contiguous().cpu()
    return safetensors_save(tensors, metadata=metadata or None)


def trainer_bytes(optimizer, scheduler) -> bytes:
    """Optimizer, scheduler and RNG state as a torch file of tensors and plain containers."""
    trainer_state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        trainer_state["cuda_rng"] = torch.cuda.get_rng_state_all()
    buffer = io.BytesIO()
    torch.save(trainer_state, buffer)
    return buffer.getvalue()


def estimate_checkpoint_bytes(model: torch.nn.Module) -> int:
    """About how many bytes one checkpoint of `model` takes: the weights plus AdamW's two moment
    tensors per parameter, plus room for the small files."""
    unique = {p.untyped_storage().data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    return 3 * sum(unique.values()) + 64 * 1024


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizer, scheduler, keep: int,
                    extra: dict[str, str] | None = None, state: dict | None = None) -> Path:
    """Write step_XXXXXXX/ into root via a temporary directory, then prune to `keep` newest.

    extra: file name -> text written beside the weights (the vocabulary, for instance).
    state: JSON-ready trainer bookkeeping stored in state.json (read back by `read_checkpoint`).
    If writing fails (a full disk), the temporary directory is removed and the older
    checkpoints are left as they were.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    blobs = {name: text.encode() for name, text in (extra or {}).items()}
    blobs[WEIGHTS] = weights_bytes(model)
    blobs[TRAINER] = trainer_bytes(optimizer, scheduler)
    files = {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in blobs.items()}
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        for name, data in blobs.items():
            _write_file(tmp / name, data)
        # Last: its presence marks the checkpoint complete, and it vouches for every other file.
        _write_file(tmp / STATE, json.dumps({"step": step, **(state or {}), "files": files}).encode())
        fsync_dir(tmp)
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes it private; a checkpoint is as readable as the run
        if final.exists():
            _discard(final)
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(root)[:-keep]:
        _discard(old)
    return final


def read_state(checkpoint: Path) -> dict:
    """A checkpoint's state.json; a CorruptCheckpoint if it is unreadable."""
    path = checkpoint / STATE
    try:
        state = json.loads(path.read_text())
        int(state["step"])
    except FileNotFoundError:
        raise CorruptCheckpoint(f"checkpoint {str(checkpoint)!r} is incomplete: it has no {STATE}") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: {reason}") from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: not a JSON object")
    return state


def verify_checkpoint(checkpoint: Path) -> dict:
    """Check every file against the size and SHA-256 recorded in state.json; returns the state.

    Checkpoints written before checksums were recorded pass unchecked (their files are still
    validated when they are parsed).
    """
    state = read_state(checkpoint)
    files = state.get("files")
    if files is None:
        return state
    if not isinstance(files, dict):
        raise CorruptCheckpoint(f"checkpoint file {str(checkpoint / STATE)!r} is corrupt: bad 'files' record")
    if WEIGHTS not in files:
        raise CorruptCheckpoint(f"checkpoint {str(checkpoint)!r} records no {WEIGHTS}")
    for name, expected in files.items():
        path = checkpoint / name
        try:
            size = path.stat().st_size
        except OSError:
            raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is missing") from None
        if size != expected.get("bytes", size):
            raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is truncated or damaged: {size:,} bytes, "
                                    f"{expected['bytes']:,} recorded")
        if sha256_file(path) != expected.get("sha256"):
            raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: its SHA-256 does not match the "
                                    "one recorded when it was written")
    return state


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _parse_weights(path: Path) -> None:
    """Parse a safetensors file (catches damage in checkpoints without checksums)."""
    if not path.is_file():
        raise CorruptCheckpoint(f"checkpoint {str(path.parent)!r} has no {WEIGHTS}")
    try:
        load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: {_first_line(err)}") from None


def _apply_weights(model: torch.nn.Module, path: Path) -> None:
    try:
        load_model(model, str(path))  # safetensors: no code can run while loading
    except RuntimeError as err:  # missing or unexpected tensors, wrong shapes
        detail = " ".join(str(err).split())
        raise UserError(f"the weights in {str(path)!r} do not fit this model (was the config changed?): "
                        f"{detail[:300]}") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: {_first_line(err)}") from None


def load_weights(model: torch.nn.Module, checkpoint: Path) -> int:
    """Load model weights (safetensors only) from a verified checkpoint directory; returns its step."""
    state = verify_checkpoint(checkpoint)
    path = checkpoint / WEIGHTS
    if "files" not in state:
        _parse_weights(path)
    _apply_weights(model, path)
    return int(state["step"])


def read_trainer_state(checkpoint: Path) -> dict:
    """trainer.pt as tensors and plain containers; anything else is refused (no pickled code runs)."""
    path = checkpoint / TRAINER
    if not path.is_file():
        raise CorruptCheckpoint(f"checkpoint {str(checkpoint)!r} has no {TRAINER}")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        # weights_only refuses any object that is not a tensor or a plain container. A
        # checksum-valid file with such content was written by something other than lengthgen.
        if "weights only" in str(err).lower() or "weights_only" in str(err):
            raise UserError(f"refusing to load {str(path)!r}: it holds pickled objects other than tensors and "
                            "plain containers, and only those are loaded (weights_only=True)") from None
        raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: {_first_line(err)}") from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: {_first_line(err)}") from None
    missing = [key for key in ("optimizer", "scheduler", "torch_rng")
               if not isinstance(state, dict) or key not in state]
    if missing:
        raise CorruptCheckpoint(f"checkpoint file {str(path)!r} is corrupt: it lacks {', '.join(missing)}")
    return state


def apply_trainer_state(state: dict, optimizer, scheduler, checkpoint: Path) -> None:
    """Restore optimizer, scheduler and RNG state read by `read_trainer_state`."""
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise UserError(f"the optimizer state in {str(checkpoint / TRAINER)!r} does not fit this model: "
                        f"{_first_line(err)}") from None
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def load_trainer_state(checkpoint: Path, optimizer, scheduler) -> None:
    """Restore optimizer, scheduler and RNG state (tensors only: no pickled objects)."""
    apply_trainer_state(read_trainer_state(checkpoint), optimizer, scheduler, checkpoint)


@dataclass
class Loaded:
    """A checkpoint that passed every check: its directory, state.json and trainer state."""

    path: Path
    state: dict
    trainer: dict

    @property
    def step(self) -> int:
        return int(self.state["step"])


def read_checkpoint(checkpoint: Path) -> Loaded:
    """Verify and parse a whole checkpoint without touching any model (CorruptCheckpoint if bad)."""
    state = verify_checkpoint(checkpoint)
    if "files" not in state:
        _parse_weights(checkpoint / WEIGHTS)
    return Loaded(checkpoint, state, read_trainer_state(checkpoint))


def apply_checkpoint(model: torch.nn.Module, optimizer, scheduler, loaded: Loaded) -> None:
    """Load a checkpoint read by `read_checkpoint` into the model, optimizer and scheduler."""
    _apply_weights(model, loaded.path / WEIGHTS)
    apply_trainer_state(loaded.trainer, optimizer, scheduler, loaded.path)


def quarantine(checkpoint: Path) -> Path:
    """Move a bad checkpoint aside as `corrupt-step_XXXXXXX` (kept for inspection, no longer resumed
    from or pruned as a checkpoint)."""
    target = checkpoint.with_name(f"corrupt-{checkpoint.name}")
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    os.replace(checkpoint, target)
    return target


def newest_good_checkpoint(root: Path, warn: Callable[[str], None]) -> Loaded | None:
    """The newest checkpoint that passes every check, moving bad ones aside with a warning each.

    None when no good checkpoint is left (the run must start over).
    """
    for path in reversed(checkpoint_dirs(root)):
        try:
            return read_checkpoint(path)
        except CorruptCheckpoint as err:
            moved = quarantine(path)
            warn(f"warning: {err}; moved it to {moved.name} and trying the previous checkpoint")
    return None


def find_checkpoint(root: Path, step: int | None = None) -> Path:
    """The checkpoint at `step`, or the newest one."""
    found = checkpoint_dirs(root)
    if not found:
        raise UserError(f"no checkpoint in {str(root)!r}")
    if step is None:
        return found[-1]
    for path in found:
        if checkpoint_step(path) == step:
            return path
    steps = ", ".join(str(checkpoint_step(p)) for p in found)
    raise UserError(f"no checkpoint at step {step}; available: {steps}")
