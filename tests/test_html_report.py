"""report.html: self-contained, every section, and rendered in a real browser.

The browser check uses Debian's `chromium` headless (`.ci/run` installs it) and
skips with a reason where it is absent. A copy of the page gets a first script
that records console errors and uncaught exceptions; Chromium's --dump-dom then
shows them, the page's own count of fetched resources (`data-resources`) and
of the figures it drew (`data-plots-drawn`: those in view first, the rest in the
background after the load event), and plotly's main-svg per figure.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from analysis import html_report, report
from test_analysis_report import _ranking_studies, _scaling_studies

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_CAPTURE = """<script>
window.__errors = [];
window.addEventListener("error", function(e){ window.__errors.push("uncaught: " + e.message); });
var _err = console.error;
console.error = function(){ window.__errors.push(Array.from(arguments).join(" "));
                            _err.apply(console, arguments); };
window.addEventListener("load", function(){ setTimeout(function(){
  var p = document.createElement("pre"); p.id = "captured-errors";
  p.textContent = JSON.stringify(window.__errors); document.body.appendChild(p); }, 20000); });
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
  root = tmp_path_factory.mktemp("results")
  _scaling_studies(root)
  _ranking_studies(root)
  out = tmp_path_factory.mktemp("report")
  report.write_report(root, out, n_boot=50, k_curves=2)
  return out / html_report.REPORT_HTML


def test_report_html_is_self_contained_with_every_section(page):
  text = page.read_text(encoding="utf-8")
  assert "<script>" in text and "Plotly" in text  # plotly.js inlined
  markup = re.sub(r"<script>.*?</script>", "", text, flags=re.S)  # the page, not the library
  assert not re.search(r"""<(script|link|img|iframe)[^>]*(src|href)\s*=""", markup)
  for name, _ in html_report.SECTIONS:
    assert f"<h2>{name}</h2>" in text
  assert "not applicable" not in text and "error while building" not in text
  # steps to result, best-of-k, rankings, 9 parallel-coordinates, 9 axis, isolation,
  # 9 training-curve figures
  assert text.count('class="plotly-graph-div') >= 20
  assert "<table class=sortable>" in text


def test_nohtml_writes_only_the_markdown(tmp_path):
  root = tmp_path / "results"
  root.mkdir()
  _scaling_studies(root)
  report.write_report(root, tmp_path / "out", n_boot=20, html=False)
  assert (tmp_path / "out" / "report.md").is_file()
  assert not (tmp_path / "out" / html_report.REPORT_HTML).exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it: apt-get install chromium)")
def test_report_html_renders_offline_in_headless_chromium(page, tmp_path):
  probe = tmp_path / "probe.html"
  probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + _CAPTURE, 1),
                   encoding="utf-8")
  run = subprocess.run(
      [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
       "--enable-unsafe-swiftshader", "--virtual-time-budget=30000", "--dump-dom",
       probe.as_uri()],
      capture_output=True, text=True, timeout=240)
  dom = run.stdout
  assert run.returncode == 0, run.stderr[-2000:]
  errors = re.search(r'<pre id="captured-errors">(.*?)</pre>', dom)
  assert errors is not None, "the page never finished loading"
  assert errors.group(1) == "[]", errors.group(1)
  assert 'data-resources="0"' in dom  # no request left the page
  n_plots = dom.count('class="plotly-graph-div')
  assert n_plots >= 20
  # every figure drawn: the page's own count, and plotly's <svg class="main-svg"> in each
  assert f'data-plots-drawn="{n_plots}"' in dom
  assert dom.count('class="main-svg"') >= n_plots
