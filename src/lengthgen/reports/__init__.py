"""Reports: from the runs of a sweep to tables, plots and a verdict.

aggregate.py  every evaluation row of every run as one tidy table; summaries over seeds; the gap
tables.py     markdown tables
plots.py      length curves, curves over steps, heatmaps (PNG)
report.py     report.md of one sweep (with its preset's verdict when a preset made it)
summary.py    one table of every preset's reported verdict (`lengthgen repro --summary`)
reach.py      how far a main task reaches past its training lengths, per run and against a sweep knob
replication.py  a preset's verdict across seed sets: the original sweep beside its fresh-seed replications
"""
