"""The HTML report of a run: metrics, plots, best/worst samples with overlays, failures.

``build_report(run_dir)`` writes ``RUN/report.html``; ``tgs report RUN`` is its command.
matplotlib is needed for the plots (``pip install 'tgs[report]'``) and is imported when
a plot is drawn.
"""

from tgs.report.html import REPORT_FILE, build_report, render_report
from tgs.report.run_data import RunData, load_run, object_class

__all__ = ["REPORT_FILE", "RunData", "build_report", "load_run", "object_class", "render_report"]
