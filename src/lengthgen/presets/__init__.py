"""Presets: one per paper claim, each a sweep at CPU and paper scale plus a PASS/FAIL check.

`lengthgen repro NAME` runs a preset's sweep, aggregates it and writes a report with the check's
verdict. Checks never look at anything but the aggregated table (or, for a preset with an
`analyze` step, the table that step makes from the finished runs), and state their rule in words
next to the numbers.

base.py        Preset, Verdict, the PRESETS registry, scoring shared by the checks
copy_tasks.py  copy-encodings: copy with the standard encodings (the core claim)
sparsity.py    Paper A: sparsity (a-sparsity) and locality (a-locality); the scales of every A preset
coupling.py    Paper A: position coupling (a-coupling) and Predictive Position Coupling (a-ppc)
language.py    Paper A: far-context gain and its sparsity in natural language (a-language)
transfer.py    Paper B: transfer from auxiliary tasks (b-transfer-*, b-control, b-rope, b-single-aux*)
ratio.py       Paper B: transfer against L_aux / L_main (b-ratio)
heads.py       Paper B: shared heads against the generalization gap over training (b-heads)
pretrained.py  Paper B: more pretraining, further extrapolation (b-pretrained)
suite.py       every preset at one scale as one resumable queue (`lengthgen repro --all`)

Importing the package registers every preset.
"""

from . import copy_tasks, coupling, heads, language, pretrained, ratio, sparsity, transfer  # noqa: F401  (registration)
from .base import PRESETS, Preset, Verdict, get_preset, preset_of, register_preset

__all__ = ["PRESETS", "Preset", "Verdict", "get_preset", "preset_of", "register_preset"]
