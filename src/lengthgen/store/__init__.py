"""Storage: a run is a directory, and nothing in it is ever half written.

fileio.py      atomic writes, checksums, exclusive and waiting locks, disk-space and permission checks
rundir.py      the run directory: config.yaml, env.json, metrics.jsonl, eval.csv, done.json, locks
checkpoint.py  checkpoints: safetensors weights and trainer state, verified, kept, set aside if damaged
trackers.py    experiment trackers by name (`train.trackers`: tensorboard, wandb, mlflow)
eval_plot.py   a run's own figure, eval.png: exact match vs length at the latest evaluated step
"""
