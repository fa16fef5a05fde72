"""Rich tables of a metrics result, one per protocol, each naming its protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.table import Table

__all__ = ["metrics_tables"]


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def metrics_tables(result: Mapping[str, Any]) -> list[Table]:
    """One table per protocol: split, samples, missing, J, F, S, plus the mean over splits.

    J and F are higher-is-better (regular splits); S is lower-is-better (null split).
    """
    tables = []
    for name, block in result["protocols"].items():
        table = Table(title=f"protocol [bold]{name}[/]: {block['description']}", title_justify="left")
        table.add_column("split")
        table.add_column("samples", justify="right")
        table.add_column("missing", justify="right")
        table.add_column("unscored", justify="right")
        for key in ("J", "F", "S"):
            table.add_column(key + (" (lower is better)" if key == "S" else ""), justify="right")
        missing_total = 0
        unscored_total = 0
        for split, stats in block["splits"].items():
            missing = int(stats.get("missing", 0))
            missing_total += missing
            unscored = int(stats.get("unscored", 0))
            unscored_total += unscored
            table.add_row(
                escape(split),  # split names come from the CSV
                str(stats.get("count", 0)),
                f"[red]{missing}[/]" if missing else "0",
                f"[red]{unscored}[/]" if unscored else "0",
                _cell(stats.get("J")),
                _cell(stats.get("F")),
                _cell(stats.get("S")),
            )
        mean = block.get("mean", {})
        if len(mean.get("splits", [])) > 1:
            table.add_row(
                "mean (" + escape("+".join(mean["splits"])) + ")", "", "", "", _cell(mean.get("J")), _cell(mean.get("F")), "-",
                style="bold",
            )
        notes = []
        if missing_total:
            policy = result.get("missing_policy", "empty")
            how = ("full masks on the null split, empty elsewhere" if policy == "worst" else "empty masks")
            notes.append(f"{missing_total} sample(s) had no prediction and were scored as {how}")
        if unscored_total:
            notes.append(f"{unscored_total} sample(s) could not be scored: unreadable ground truth (see metrics.json)")
        if notes:
            table.caption = "; ".join(notes)
        tables.append(table)
    return tables
