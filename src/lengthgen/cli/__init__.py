"""The `lengthgen` command. Every user error ends with one line on stderr and exit status 2.

main.py    the parser (each command module adds its own subcommands), dispatch, signals, errors
data.py    tasks, show, data: list tasks and write their examples
train.py   train, finetune: one run from a config (or a local Hugging Face model)
runs.py    eval, export, heads, align, context: commands that read a trained run
sweeps.py  sweep, report, repro: many runs, their tables, plots and verdicts

`python -m lengthgen.cli` (what torchrun starts) runs `main.main`, as the console script does.
"""
