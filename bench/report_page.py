"""Report page: a fleet of 10,000 VMs rendered in Chromium, and the page's size.

Figures: the time Debian's headless chromium takes from navigation to the second frame after `load` (parsed, the
script run, laid out, painted), median of 5, against a static page of the same byte size with no script (paragraphs
of text) loaded the same way in the same browser in the same run — goal: under 1 s; and the page's bytes against
2 MB (the goal: ratio under 1)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

VMS = 10_000
RUNS = 5
LIMIT = 2_000_000  # bytes
ROOT = Path(__file__).resolve().parent.parent


def static_page(size: int) -> str:
    """Plain paragraphs, no script, no style, padded to ``size`` bytes."""
    head, tail = '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>static</title></head><body>', \
        "</body></html>"
    para = "<p>" + "vmkeeper static baseline text " * 8 + "</p>\n"
    body = para * ((size - len(head) - len(tail)) // len(para))
    return head + body + " " * (size - len(head) - len(body) - len(tail)) + tail


def run() -> list[dict]:
    from shared.report.render import render
    from tests.report.sample import sample_report

    page = render(sample_report(VMS, nasty=False)).encode("utf-8")
    node = shutil.which("node")
    assert node, "node is missing: `make setup`"
    with tempfile.TemporaryDirectory() as tmp:
        report, plain = Path(tmp, "report.html"), Path(tmp, "static.html")
        report.write_bytes(page)
        plain.write_bytes(static_page(len(page)).encode("utf-8"))
        assert plain.stat().st_size == len(page)
        done = subprocess.run([node, str(Path(__file__).with_suffix(".mjs")), str(RUNS), report.as_uri(),
                               plain.as_uri()], capture_output=True, text=True, timeout=900, cwd=ROOT)
        seen = json.loads(done.stdout or "{}")
        assert done.returncode == 0 and "error" not in seen, (seen.get("error"), done.stderr)
        runs, base = seen[report.as_uri()], seen[plain.as_uri()]
    assert all(r["count"] == f"{VMS} of {VMS} VMs" and not r["errors"] for r in runs), runs[0]
    ms, base_ms = statistics.median(r["ms"] for r in runs), statistics.median(r["ms"] for r in base)
    return [
        {"name": "report_page.render_10k_vms", "figure": ms / 1000, "unit": "s",
         "baseline": "a static page of the same byte size, no script, same browser and run (goal: under 1 s)",
         "baseline_figure": base_ms / 1000, "ratio": ms / base_ms,
         "detail": {"vms": VMS, "runs_ms": [round(r["ms"]) for r in runs],
                    "baseline_runs_ms": [round(r["ms"]) for r in base], "median_of": RUNS}},
        {"name": "report_page.bytes_10k_vms", "figure": len(page) / 1e6, "unit": "MB",
         "baseline": "the 2 MB goal", "baseline_figure": LIMIT / 1e6, "ratio": len(page) / LIMIT,
         "detail": {"vms": VMS, "bytes": len(page)}},
    ]
