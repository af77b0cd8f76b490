"""Sweeps: a base config, a grid of overrides and a list of seeds, run as one experiment.

spec.py       the sweep spec (YAML or Python), its validation and its expansion into runs
run.py        the sweep directory and `run_sweep`: run order, resume, copies, session records
cost.py       a run's estimated FLOPs from its config: the order of runs, the suite's queue and ETA
progress.py   the progress bar over a queue of runs, moving while they train (in estimated GFLOP)
executors.py  where runs execute, by name: local worker processes or a Ray cluster
reuse.py      finished runs with the same config are copied from other sweeps instead of trained
"""
