"""Mechanism analyses of trained models (Paper B, PAPERS.md B4; Paper A's natural language, A6).

ablation.py   ablate chosen heads during evaluation (zero or mean); maps of the exact-match drop
              per (layer, head)
attention.py  attention patterns of matched prompts of two tasks and their per-head difference
tracking.py   both across a run's checkpoints next to the generalization gap: tables,
              correlations, plots (`lengthgen heads RUN`)
stats.py      Pearson and Spearman correlation
dependency.py per-token far-context gain and the sparsity k of its dependency, on any scorer
context.py    that analysis for a trained text run: the model's scorer, tables, plots
              (`lengthgen context RUN`)
alignment.py  copy and reverse: attention of the answer-predicting tokens on the input token each
              answer copies, and accuracy per answer position (`lengthgen align RUN`)
"""
