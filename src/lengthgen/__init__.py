"""lengthgen: train transformers on short inputs, measure them on longer ones.

The top level is the spine of one run, in the order data flows through it (read it in this
order; about 2,500 lines, an hour):

  config.py      ExperimentConfig: every knob, typed and validated, YAML + dotted overrides
  vocab.py       the fixed vocabulary
  tasks/         Task.sample(rng, n, length) -> examples with position IDs (and coupled IDs)
  positions.py   position-ID policies applied on the data side (coupled, random offset, PoSE, ...)
  data.py        the task mixture, fixed evaluation sets, collation into batches
  model/         the decoder and its encoding plug-ins (and the other architectures)
  experiment.py  config -> (vocab, task specs, model, device, precision)
  schedules.py   learning-rate schedules by name
  train.py       the Trainer: AdamW, loss on answer tokens, evaluation, checkpoints, resume
  evaluate.py    exact match and token accuracy per task and length
  decoding.py    greedy decoding with the KV cache, PPC decoding on predicted position IDs

Under the spine, used by it: errors.py (the one-line UserError), registry.py (plug-ins by
name), runtime.py (device, precision, threads), distributed.py (torchrun data parallelism),
optional.py (matplotlib, transformers and Ray, imported when first needed).

Around it, the rooms, each a package whose `__init__` maps its files:
  store/     a run is a directory: atomic files, locks, the run directory, checkpoints
  sweeps/    many runs: specs, grids, executors (local processes, Ray), reuse of finished runs
  reports/   tables over runs and seeds, plots, report.md, the summary of every preset
  presets/   one preset per paper claim: its sweeps and its PASS / FAIL check
  analysis/  what a trained model does: head ablation, attention, far-context dependency
  cli/       the `lengthgen` command

The spine imports no room but store/ (the trainer writes the run directory through it); the
rooms import the spine and each other. There is no import cycle, imports inside functions
included (tests/test_imports.py fails on one).
"""

__version__ = "0.1.0"
