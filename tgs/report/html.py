"""``report.html``: one self-contained page describing a run.

Sections: a banner when the run used the tiny untrained models; notes (what could not be
shown and why); the metrics table per protocol and split; plots (J per split, mean J per
object class, and a comparison with other runs such as f_object vs s_object); the best and
worst samples by J with overlay strips, expression, object text and reasoning; failures;
the run manifest.

Self-contained: plots are base64 PNG, strips base64 JPEG, the style is inline; the page
loads nothing from anywhere. Every text that comes from data (expressions, model outputs,
errors, paths) is HTML-escaped: they are untrusted.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

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

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#1b1b1b;padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{margin:8px 0;font-size:1.05em}.sub{color:#666;font-size:.9em}
.banner{background:#fff3cd;border:2px solid #e0a800;padding:10px 14px;font-weight:600;margin:12px 0}
.notes{background:#f4f6f8;border-left:4px solid #8a99a8;padding:6px 14px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.mean td{font-weight:700}.bad{color:#b00020}
.card{border:1px solid #ccc;border-radius:6px;padding:10px 14px;margin:12px 0}
.card img{max-width:100%;display:block;margin-top:8px}.card table{margin:4px 0}
pre{white-space:pre-wrap;word-break:break-word;background:#fafafa;border:1px solid #eee;padding:6px;margin:4px 0}
img.plot{max-width:100%}.row{display:flex;flex-wrap:wrap;column-gap:24px;align-items:flex-start}
figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}.legend span{display:inline-block;margin-right:16px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px;border:1px solid #555}
td.err{word-break:break-word;max-width:700px}
"""


# ---------------------------------------------------------------------------- small pieces


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = (),
           row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cls = f' class="{_e(row_classes[index])}"' if row_classes and row_classes[index] else ""
        cells = "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(uri: str, alt: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} src="{uri}" alt="{_e(alt)}">'


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------------------- sections


def _header(run: RunData) -> str:
    kind = run.manifest.get("kind", "run")
    created = run.manifest.get("created", "?")
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = [
        f"<h1>TGS report: {_e(run.run_dir.name)}</h1>",
        f'<div class="sub">{_e(kind)} run in {_e(run.run_dir)}; created {_e(created)}; '
        f"report generated {_e(generated)}</div>",
    ]
    if run.is_tiny:
        out.append(f'<div class="banner">{_e(TINY_BANNER)}</div>')
    return "".join(out)


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in dict.fromkeys(notes))
    return f'<div class="notes"><ul>{items}</ul></div>'


def _overview(run: RunData) -> str:
    finished = sum(1 for r in run.samples.values() if r.get("status") != "failed")
    thinking = (
        "no thinker (the expressions were grounded as they are)"
        if run.object_tag == "direct"
        else f"{len(run.thoughts)} thoughts read"
    )
    text = f"{len(run.samples)} samples recorded: {finished} finished, {len(run.failures)} failed; {thinking}"
    return f'<p class="sub">{_e(text)}</p>'


def _metrics_tables(metrics: Mapping[str, Any]) -> str:
    parts = []
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
        parts.append(
            f"<div><h3>protocol {_e(name)}</h3><div class=\"sub\">{_e(block.get('description', ''))}</div>"
            + _table(("split", "samples", "missing", "J", "F", "S (lower is better)"), rows,
                     numeric=(1, 2, 3, 4, 5), row_classes=classes)
            + "</div>"
        )
    bench = metrics.get("benchmark") or {}
    where = ", ".join(f"{k} {v}" for k, v in bench.items())
    return (
        f'<div class="sub">benchmark: {_e(where)}; evaluated {_e(metrics.get("timestamp", "?"))}</div>'
        f'<div class="row">{"".join(parts)}</div>'
    )


def _metrics_section(run: RunData) -> str:
    if run.metrics is None:
        body = "<p>No metrics: this run has no metrics.json.</p>"
    else:
        body = _metrics_tables(run.metrics)
    return _section("Metrics", body, "metrics")


def _scored(scores: Sequence[SampleScore]) -> list[SampleScore]:
    return [s for s in scores if s.J is not None]


def class_means(scores: Sequence[SampleScore]) -> list[tuple[str, float, int]]:
    """(class, mean J, samples) over the samples with a J, best class first (ties by name)."""
    by_class: dict[str, list[float]] = defaultdict(list)
    for score in _scored(scores):
        by_class[object_class(score.uid)].append(float(score.J))  # type: ignore[arg-type]
    means = [(name, float(np.mean(values)), len(values)) for name, values in by_class.items()]
    return sorted(means, key=lambda m: (-m[1], m[0]))


def _plots_section(run: RunData, protocol: str | None) -> str:
    if protocol is None or not run.scores.get(protocol):
        return _section("Plots", "<p>No per-sample scores to plot.</p>", "plots")
    scores = run.sample_scores(protocol)
    by_split: dict[str, list[float]] = defaultdict(list)
    for score in _scored(scores):
        by_split[score.split].append(float(score.J))  # type: ignore[arg-type]
    if not by_split:
        return _section("Plots", "<p>No sample has a J score (only null splits were scored).</p>", "plots")
    parts = [
        f"<figure><figcaption>J per sample, by split (protocol {_e(protocol)})</figcaption>",
        _img(png_data_uri(plots.j_histograms(by_split)), "histograms of J per split", "plot"),
        "</figure><figure><figcaption>Mean J by object class</figcaption>",
        _img(png_data_uri(plots.j_by_class_plot(class_means(scores))), "mean J per object class", "plot"),
        "</figure>",
    ]
    return _section("Plots", f'<div class="row">{"".join(parts)}</div>', "plots")


def _split_means(run: RunData, protocol: str) -> dict[str, float]:
    block = ((run.metrics or {}).get("protocols") or {}).get(protocol) or {}
    return {split: float(v["J"]) for split, v in (block.get("splits") or {}).items() if v.get("J") is not None}


def _compare_title(runs: Sequence[RunData]) -> str:
    tags = {r.object_tag for r in runs}
    if len(runs) == 2 and tags == {"f_object", "s_object"}:
        return "f_object vs s_object"
    return "Comparison of runs"


def _compare_section(run: RunData, others: Sequence[RunData], protocol: str | None) -> str:
    runs = [run, *others]
    title = _compare_title(runs)
    if protocol is None:
        return _section(title, "<p>No metrics to compare.</p>", "compare")
    means = [_split_means(r, protocol) for r in runs]
    splits = list(dict.fromkeys(s for m in means for s in m))
    headers = ["run", "object text", *[f"J {s}" for s in splits]]
    rows = [(r.label, r.object_tag or "?", *[_num(m.get(s)) for s in splits]) for r, m in zip(runs, means)]
    parts = [f'<div class="sub">protocol {_e(protocol)}</div>', _table(headers, rows, numeric=range(2, len(headers)))]
    missing = [r.label for r, m in zip(runs, means) if not m]
    if missing:
        parts.append(_notes([f"{label}: no J under protocol {protocol}" for label in missing]))
    if sum(1 for m in means if m) >= 2:
        paired = None
        if len(runs) == 2:
            a = {s.uid: s.J for s in _scored(runs[0].sample_scores(protocol))}
            b = {s.uid: s.J for s in _scored(runs[1].sample_scores(protocol))}
            common = sorted(set(a) & set(b))
            paired = ([a[u] for u in common], [b[u] for u in common]) if common else None
        png = plots.compare_plot([r.label for r in runs], means, paired)
        parts.append(_img(png_data_uri(png), title, "plot"))
    return _section(title, "".join(parts), "compare")


def _thought_rows(run: RunData, uid: str) -> list[tuple[str, str]]:
    thought = run.thoughts.get(uid)
    if thought is None:
        return []
    return [
        ("f_object", thought.f_object if thought.f_object is not None else "(none)"),
        ("s_object", thought.s_object if thought.s_object is not None else "(none)"),
        ("thought status", thought.status.value + (" (null reference)" if thought.is_null else "")),
    ]


def _card(run: RunData, rank: int, score: SampleScore, bench: Any, max_frames: int) -> str:
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
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    metric = " &middot; ".join(
        f"{name} {_num(value, 3)}" for name, value in (("J", score.J), ("F", score.F), ("S", score.S)) if value is not None
    )
    parts = [f"<h3>{rank}. {_e(score.uid)} <span class=\"sub\">{metric}</span></h3><table>{table}</table>"]
    thought = run.thoughts.get(score.uid)
    if thought is not None and thought.reasoning:
        parts.append(f"<details open><summary>reasoning</summary><pre>{_e(thought.reasoning)}</pre></details>")
    strip, notes = sample_strip(run, score.uid, bench, max_frames=max_frames)
    if strip is not None:
        parts.append(_img(jpeg_data_uri(strip), f"overlay strip of {score.uid}"))
    parts.append(_notes(notes))
    return f'<div class="card">{"".join(parts)}</div>'


_LEGEND = (
    '<div class="legend sub"><span><i class="sw" style="background:#ff3838"></i>predicted mask and chosen box</span>'
    '<span><i class="sw" style="background:#40ff40"></i>ground-truth outline</span>'
    "<span>thumbnails are frames 0, 1, ... of the sample</span></div>"
)


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


def _samples_section(run: RunData, bench: Any, protocol: str | None, top_k: int, max_frames: int) -> str:
    if protocol is None or not run.scores.get(protocol):
        return _section("Best and worst samples", "<p>No per-sample scores: nothing to rank.</p>", "samples")
    scores = run.sample_scores(protocol)
    parts = [f'<div class="sub">ranked by J under protocol {_e(protocol)}</div>', _LEGEND]
    best, worst = rank_samples(scores, top_k)
    for title, chosen in ((f"Best {len(best)} by J", best), (f"Worst {len(worst)} by J", worst)):
        if chosen:
            parts.append(f"<h3>{_e(title)}</h3>")
            parts.extend(_card(run, i, s, bench, max_frames) for i, s in enumerate(chosen, start=1))
    nulls = _ranked(scores, "S", highest_first=True)[:top_k]
    if nulls:
        parts.append(f"<h3>Null references with the largest predicted area (worst {len(nulls)} by S)</h3>")
        parts.extend(_card(run, i, s, bench, max_frames) for i, s in enumerate(nulls, start=1))
    return _section("Best and worst samples", "".join(parts), "samples")


def _failures_section(failures: Sequence[Failure]) -> str:
    if not failures:
        return _section("Failures", "<p>No sample failed.</p>", "failures")
    shown = failures[:MAX_FAILURE_ROWS]
    head = "".join(f"<th>{h}</th>" for h in ("uid", "stage", "error kind", "error"))
    rows = "".join(
        f"<tr><td>{_e(f.uid)}</td><td>{_e(f.stage)}</td><td>{_e(f.kind)}</td><td class=\"err\">{_e(f.error)}</td></tr>"
        for f in shown
    )
    more = f"<p>... and {len(failures) - len(shown)} more (see samples.jsonl)</p>" if len(failures) > len(shown) else ""
    return _section(f"Failures ({len(failures)})", f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}",
                    "failures")


def _manifest_section(manifest: Mapping[str, Any]) -> str:
    parts = []
    scalars = [(k, _plain(v)) for k, v in manifest.items() if not isinstance(v, Mapping)]
    if scalars:
        parts.append(_table(("field", "value"), scalars))
    for key, value in manifest.items():
        if isinstance(value, Mapping):
            parts.append(f"<h3>{_e(key)}</h3>" + _table(("field", "value"), [(k, _plain(v)) for k, v in value.items()]))
    return _section("Run manifest", "".join(parts), "manifest")


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
    body = [
        _header(run),
        _notes([*run.notes, *notes, *(f"{o.label}: {n}" for o in others for n in o.notes)]),
        _overview(run),
        _metrics_section(run),
        _plots_section(run, chosen),
        _compare_section(run, others, chosen) if others else "",
        _samples_section(run, bench, chosen, top_k, max_frames),
        _failures_section(run.failures),
        _manifest_section(run.manifest),
    ]
    title = f"TGS report: {run.run_dir.name}" + (" (tiny untrained models)" if run.is_tiny else "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
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
