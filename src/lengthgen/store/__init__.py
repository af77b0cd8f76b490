"""Storage: a run is a directory, and nothing in it is ever half written.

fileio.py      atomic writes, checksums, exclusive and waiting locks, disk-space and permission checks
rundir.py      the run directory: config.yaml, env.json, metrics.jsonl, eval.csv, done.json, locks
checkpoint.py  checkpoints: safetensors weights and trainer state, verified, kept, set aside if damaged
"""
