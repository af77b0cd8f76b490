"""Markdown tables: the one format every report, summary and preset section writes."""

from __future__ import annotations

import math

import pandas as pd


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub markdown table."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])
