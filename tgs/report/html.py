"""``report.html``: one self-contained page describing a run.

Sections: a banner when the run used the tiny untrained models; notes (what could not be
shown and why); the metrics table per protocol and split; plots (J per split, mean J per
object class, and a comparison with other runs such as f_object vs s_object); the best and
worst samples by J with overlay strips, expression, object text and reasoning; failures;
the run manifest.

Self-contained: plots are base64 PNG, strips base64 JPEG, the style is inline; the page
loads nothing from anywhere. The markup lives in jinja2 templates (``templates/report.html``
with its macros and ``report.css``, package data); this module only gathers the values.
The environment autoescapes every value, so every text that comes from data (expressions,
model outputs, errors, paths) is HTML-escaped: they are untrusted.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from tgs.errors import DataError
from tgs.report import plots
from tgs.report.run_data import Failure, RunData, SampleScore, load_run, object_class
from tgs.report.strips import jpeg_data_uri, open_benchmark, png_data_uri, sample_strip

__all__ = ["REPORT_FILE", "build_report", "render_report"]

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
MAX_FAILURE_ROWS = 200
TINY_BANNER = (
    "tiny untrained models: this run used the random tiny model set, so its numbers and masks are "
    "meaningless; the page only shows what a report looks like"
)

_TEMPLATE = "report.html"


def _environment() -> jinja2.Environment:
    """The report's templates (package data), autoescaping every value; unknown names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tgs.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------------------- sections


def _header(run: RunData) -> dict[str, Any]:
    return {
        "name": run.run_dir.name,
        "kind": run.manifest.get("kind", "run"),
        "run_dir": run.run_dir,
        "created": run.manifest.get("created", "?"),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tiny": run.is_tiny,
        "banner": TINY_BANNER,
    }


def _unique(notes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(notes))


def _overview(run: RunData) -> str:
    finished = sum(1 for r in run.samples.values() if r.get("status") != "failed")
    thinking = (
        "no thinker (the expressions were grounded as they are)"
        if run.object_tag == "direct"
        else f"{len(run.thoughts)} thoughts read"
    )
    return f"{len(run.samples)} samples recorded: {finished} finished, {len(run.failures)} failed; {thinking}"


def _metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Per protocol: one row per split (rows with missing samples marked bad) and the mean row."""
    if metrics is None:
        return None
    protocols = []
    for name, block in metrics.get("protocols", {}).items():
        rows, classes = [], []
        for split, stats in block.get("splits", {}).items():
            missing = int(stats.get("missing", 0))
            rows.append((split, stats.get("count", 0), missing, _num(stats.get("J")), _num(stats.get("F")),
                         _num(stats.get("S"))))
            classes.append("bad" if missing else "")
        mean = block.get("mean") or {}
        if len(mean.get("splits", [])) > 1:
            rows.append((f"mean ({'+'.join(mean['splits'])})", "", "", _num(mean.get("J")), _num(mean.get("F")), "-"))
            classes.append("mean")
        protocols.append({"name": name, "description": block.get("description", ""), "rows": rows, "classes": classes})
    bench = metrics.get("benchmark") or {}
    return {
        "protocols": protocols,
        "benchmark": ", ".join(f"{k} {v}" for k, v in bench.items()),
        "timestamp": metrics.get("timestamp", "?"),
    }


def _scored(scores: Sequence[SampleScore]) -> list[SampleScore]:
    return [s for s in scores if s.J is not None]


def class_means(scores: Sequence[SampleScore]) -> list[tuple[str, float, int]]:
    """(class, mean J, samples) over the samples with a J, best class first (ties by name)."""
    by_class: dict[str, list[float]] = defaultdict(list)
    for score in _scored(scores):
        by_class[object_class(score.uid)].append(float(score.J))  # type: ignore[arg-type]
    means = [(name, float(np.mean(values)), len(values)) for name, values in by_class.items()]
    return sorted(means, key=lambda m: (-m[1], m[0]))


def _plots(run: RunData, protocol: str | None) -> dict[str, Any]:
    """Either a message saying why there are no plots, or the two plots as PNG data URIs."""
    if protocol is None or not run.scores.get(protocol):
        return {"message": "No per-sample scores to plot."}
    scores = run.sample_scores(protocol)
    by_split: dict[str, list[float]] = defaultdict(list)
    for score in _scored(scores):
        by_split[score.split].append(float(score.J))  # type: ignore[arg-type]
    if not by_split:
        return {"message": "No sample has a J score (only null splits were scored)."}
    return {
        "message": None,
        "protocol": protocol,
        "histograms": png_data_uri(plots.j_histograms(by_split)),
        "classes": png_data_uri(plots.j_by_class_plot(class_means(scores))),
    }


def _split_means(run: RunData, protocol: str) -> dict[str, float]:
    block = ((run.metrics or {}).get("protocols") or {}).get(protocol) or {}
    return {split: float(v["J"]) for split, v in (block.get("splits") or {}).items() if v.get("J") is not None}


def _compare_title(runs: Sequence[RunData]) -> str:
    tags = {r.object_tag for r in runs}
    if len(runs) == 2 and tags == {"f_object", "s_object"}:
        return "f_object vs s_object"
    return "Comparison of runs"


def _compare(run: RunData, others: Sequence[RunData], protocol: str | None) -> dict[str, Any] | None:
    """J per split of each run side by side, and a plot when at least two runs have metrics."""
    if not others:
        return None
    runs = [run, *others]
    title = _compare_title(runs)
    if protocol is None:
        return {"title": title, "protocol": None}
    means = [_split_means(r, protocol) for r in runs]
    splits = list(dict.fromkeys(s for m in means for s in m))
    headers = ["run", "object text", *[f"J {s}" for s in splits]]
    rows = [(r.label, r.object_tag or "?", *[_num(m.get(s)) for s in splits]) for r, m in zip(runs, means)]
    missing = [r.label for r, m in zip(runs, means) if not m]
    plot = None
    if sum(1 for m in means if m) >= 2:
        paired = None
        if len(runs) == 2:
            a = {s.uid: s.J for s in _scored(runs[0].sample_scores(protocol))}
            b = {s.uid: s.J for s in _scored(runs[1].sample_scores(protocol))}
            common = sorted(set(a) & set(b))
            paired = ([a[u] for u in common], [b[u] for u in common]) if common else None
        plot = png_data_uri(plots.compare_plot([r.label for r in runs], means, paired))
    return {
        "title": title,
        "protocol": protocol,
        "headers": headers,
        "rows": rows,
        "numeric": list(range(2, len(headers))),
        "notes": _unique(f"{label}: no J under protocol {protocol}" for label in missing),
        "plot": plot,
    }


def _thought_rows(run: RunData, uid: str) -> list[tuple[str, str]]:
    thought = run.thoughts.get(uid)
    if thought is None:
        return []
    return [
        ("f_object", thought.f_object if thought.f_object is not None else "(none)"),
        ("s_object", thought.s_object if thought.s_object is not None else "(none)"),
        ("thought status", thought.status.value + (" (null reference)" if thought.is_null else "")),
    ]


def _card(run: RunData, rank: int, score: SampleScore, bench: Any, max_frames: int) -> dict[str, Any]:
    """One sample: its scores, texts, reasoning and overlay strip (a JPEG data URI or None)."""
    record = run.samples.get(score.uid, {})
    expression = record.get("expression")
    if expression is None and bench is not None and score.uid in bench:
        expression = bench[score.uid].expression
    source = record.get("object_source")
    object_text = record.get("object_text")
    rows = [
        ("split", score.split),
        ("object class", object_class(score.uid)),
        ("expression", expression if expression is not None else "(unknown)"),
        ("object text grounded", ("(nothing: empty masks)" if object_text is None else object_text)
         + (f"  [{source}]" if source else "")),
        *_thought_rows(run, score.uid),
    ]
    thought = run.thoughts.get(score.uid)
    strip, notes = sample_strip(run, score.uid, bench, max_frames=max_frames)
    return {
        "rank": rank,
        "uid": score.uid,
        "metrics": [(name, _num(value, 3)) for name, value in (("J", score.J), ("F", score.F), ("S", score.S))
                    if value is not None],
        "rows": rows,
        "reasoning": thought.reasoning if thought is not None else None,
        "strip_uri": jpeg_data_uri(strip) if strip is not None else None,
        "notes": _unique(notes),
    }


def _ranked(scores: Sequence[SampleScore], key: str, highest_first: bool) -> list[SampleScore]:
    """Samples with a ``key`` score and a prediction, ordered by it (ties by uid: deterministic).

    Samples without a prediction (``missing``) are left out: they have nothing to draw and
    are listed as failures.
    """
    usable = [s for s in scores if getattr(s, key) is not None and not s.missing]
    sign = -1.0 if highest_first else 1.0
    return sorted(usable, key=lambda s: (sign * float(getattr(s, key)), s.uid))


def rank_samples(scores: Sequence[SampleScore], top_k: int) -> tuple[list[SampleScore], list[SampleScore]]:
    """(best, worst) ``top_k`` samples by J, worst first in its list; no sample is in both."""
    ordered = _ranked(scores, "J", highest_first=True)
    best = ordered[:top_k]
    worst = ordered[len(best):][::-1][:top_k]
    return best, worst


def _samples(run: RunData, bench: Any, protocol: str | None, top_k: int, max_frames: int) -> dict[str, Any]:
    """Groups of sample cards: best and worst by J, then null references with the largest area."""
    if protocol is None or not run.scores.get(protocol):
        return {"protocol": None, "groups": []}
    scores = run.sample_scores(protocol)
    best, worst = rank_samples(scores, top_k)
    nulls = _ranked(scores, "S", highest_first=True)[:top_k]
    chosen = [
        (f"Best {len(best)} by J", best),
        (f"Worst {len(worst)} by J", worst),
        (f"Null references with the largest predicted area (worst {len(nulls)} by S)", nulls),
    ]
    groups = [
        {"title": title, "cards": [_card(run, i, s, bench, max_frames) for i, s in enumerate(group, start=1)]}
        for title, group in chosen
        if group
    ]
    return {"protocol": protocol, "groups": groups}


def _failures(failures: Sequence[Failure]) -> dict[str, Any]:
    shown = failures[:MAX_FAILURE_ROWS]
    return {"total": len(failures), "shown": shown, "more": len(failures) - len(shown)}


def _manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level scalars in one table, then one table per nested mapping (values as JSON)."""
    return {
        "scalars": [(k, _plain(v)) for k, v in manifest.items() if not isinstance(v, Mapping)],
        "blocks": [(k, [(kk, _plain(vv)) for kk, vv in v.items()]) for k, v in manifest.items() if isinstance(v, Mapping)],
    }


# ---------------------------------------------------------------------------- the page


def _choose_protocol(run: RunData, protocol: str | None) -> str | None:
    available = run.protocols()
    if protocol is not None:
        if protocol not in available:
            raise DataError(
                f"protocol {protocol!r} was not evaluated in this run; available: {', '.join(available) or 'none'}",
                path=run.run_dir / "metrics.json",
                fix="pick one of the available protocols, or evaluate it with `tgs eval --protocol ...`",
            )
        return protocol
    if not available:
        return None
    return "tgs" if "tgs" in available else available[0]


def render_report(
    run: RunData,
    *,
    bench: Any = None,
    others: Sequence[RunData] = (),
    protocol: str | None = None,
    top_k: int = 5,
    max_frames: int = 10,
    notes: Sequence[str] = (),
) -> str:
    """The report page of ``run`` as an HTML string (see the module docstring)."""
    if top_k < 0:
        raise ValueError(f"top_k: expected >= 0, got {top_k}")
    chosen = _choose_protocol(run, protocol)
    title = f"TGS report: {run.run_dir.name}" + (" (tiny untrained models)" if run.is_tiny else "")
    return _environment().get_template(_TEMPLATE).render(
        title=title,
        header=_header(run),
        page_notes=_unique([*run.notes, *notes, *(f"{o.label}: {n}" for o in others for n in o.notes)]),
        overview=_overview(run),
        metrics=_metrics(run.metrics),
        plots=_plots(run, chosen),
        compare=_compare(run, others, chosen),
        samples=_samples(run, bench, chosen, top_k, max_frames),
        failures=_failures(run.failures),
        manifest=_manifest(run.manifest),
    )


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    meta: str | Path | None = None,
    top_k: int = 5,
    *,
    compare: Sequence[str | Path] = (),
    protocol: str | None = None,
    max_frames: int = 10,
) -> Path:
    """Write the self-contained HTML report of a run; returns its path (default RUN/report.html).

    data_root / meta: the benchmark whose frames the strips show (default: the root the
        manifest records, with the benchmark's default CSV there).
    compare: other run directories to compare with (e.g. the same run grounding f_object).
    protocol: which metrics protocol ranks samples and feeds plots (default tgs if present).
    """
    run = load_run(run_dir)
    others = [load_run(p) for p in compare]
    bench, notes = open_benchmark(run.manifest, data_root, meta)
    html_text = render_report(run, bench=bench, others=others, protocol=protocol, top_k=top_k,
                              max_frames=max_frames, notes=notes)
    path = Path(out) if out is not None else run.run_dir / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(path)
    logger.info("wrote %s (%d kB)", path, len(html_text) // 1024)
    return path
