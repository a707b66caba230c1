"""report.html: the report's figures as interactive plots in one offline file.

Written by analysis.report beside report.md (`--nohtml` turns it off). One
self-contained file: plotly.js and every style and script are inlined, so it
opens from disk with no network (a check at the end of the page records how
many resources the page fetched, `data-resources` on <body>, 0 when nothing was,
the milliseconds from opening to the load event, `data-load-ms`, and to the first
figure drawn, `data-first-plot-ms`; figures in view are drawn first, the rest in
the background after the load event, `data-plots-drawn` counts them).
Hovering a point names its trial, hyperparameters, status and steps; a legend
entry toggles its trace (training curves start with each study's best trials
shown, the rest one click away); tables sort by a click on a column header.

Why plotly: it draws parallel coordinates, hover text and legend toggling
without extra code, and plotly.py renders offline. Measured here for one page
of 1,200 points: 4.9 MB with plotly.js inlined, 2.0 MB with bokeh (no parallel
coordinates); altair needs vl-convert (a 30 MB native wheel) to inline Vega.
The figures are the report's (same tables, same bounds and censored marks);
the PNGs stay for papers.
"""
from __future__ import annotations

import hashlib
import html
import json
import logging
import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from analysis import bounds, playbook
from analysis import figure_data as fd
from analysis.rankings import inclusion_check
from analysis.steps_to_result import describe_regime, describe_steps, scaling_curve

REPORT_HTML = "report.html"
log = logging.getLogger(__name__)
MAX_STUDIES = 40        # studies with parallel coordinates, axis plots and curves
SHOWN_CURVES = 3        # trials per study whose curve is visible at first
_CONFIG = {"displaylogo": False, "responsive": True}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left}
th{background:#f3f3f3;cursor:pointer;user-select:none}th:after{content:" \\21C5";color:#aaa}
.note{color:#555;font-size:.9em}.verdict{font-weight:600}
"""
# Sortable tables and drawing figures as they come into view: a few lines each,
# not worth a library.
_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function(th, col){
  th.addEventListener("click", function(){
    var tb = th.closest("table").tBodies[0], rows = Array.from(tb.rows);
    var asc = th.dataset.asc !== "1"; th.dataset.asc = asc ? "1" : "0";
    function key(r){ var t = r.cells[col].innerText.replace(/[,<>=()]/g, "").trim();
      var n = parseFloat(t); return isNaN(n) ? t.toLowerCase() : n; }
    rows.sort(function(a, b){ var x = key(a), y = key(b);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
    rows.forEach(function(r){ tb.appendChild(r); });
  });
});
function draw(div){
  if (div.dataset.drawn) return Promise.resolve();
  div.dataset.drawn = "1"; seen.unobserve(div);
  var spec = JSON.parse(document.getElementById(div.id + "-spec").textContent);
  return Plotly.newPlot(div, spec.data, spec.layout, __CONFIG__).then(function(){
    if (!document.body.dataset.firstPlotMs)
      document.body.dataset.firstPlotMs = Math.round(performance.now());
    document.body.dataset.plotsDrawn = (+document.body.dataset.plotsDrawn || 0) + 1;
  });
}
// Figures in view first; after the load event the rest one by one in the background.
var seen = new IntersectionObserver(function(entries){
  entries.forEach(function(e){ if (e.isIntersecting) draw(e.target); });
}, {rootMargin: "300px"});
var lazy = Array.from(document.querySelectorAll(".lazy-plot"));
lazy.forEach(function(d){ seen.observe(d); });
window.addEventListener("load", function(){
  (function next(){ var d = lazy.shift(); if (d) draw(d).then(function(){
    setTimeout(next, 0); }); })();
});
window.addEventListener("load", function(){
  document.body.dataset.resources = performance.getEntriesByType("resource").length;
  document.body.dataset.loadMs = Math.round(performance.now());
});
"""


def _plotlyjs() -> str:
  from plotly.offline import get_plotlyjs  # imported on use: report.md alone needs no plotly
  return get_plotlyjs()


def _figure_div(fig: Any) -> str:
  """A placeholder div and the figure's JSON; the page draws it when it scrolls into
  view, and the rest one by one after the load event (_SCRIPT), so a report of a
  thousand trials opens at once: WebGL figures (parallel coordinates) cost a
  second each on a machine without a GPU. The id is the JSON's hash: the same
  page for the same results, and two identical figures share one spec."""
  spec = fig.to_json().replace("</", "<\\/")  # no '</script>' inside the JSON
  fid = "figure-" + hashlib.sha1(spec.encode("utf-8")).hexdigest()[:12]
  height = int(fig.layout.height or 450)
  return (f'<div id="{fid}" class="plotly-graph-div lazy-plot" style="height:{height}px">'
          f'</div><script type="application/json" id="{fid}-spec">{spec}</script>')


def _go():
  import plotly.graph_objects as go
  return go


def _fmt(v: Any) -> str:
  if v is None:
    return "–"
  if isinstance(v, (float, np.floating)):
    if math.isnan(v):
      return "–"
    return "inf" if math.isinf(v) else f"{v:.4g}"
  return str(v)


def table(df: pd.DataFrame) -> str:
  """A sortable HTML table; every cell escaped."""
  if df.empty:
    return "<p class=note>(empty)</p>"
  head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
  body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                 for row in df.itertuples(index=False))
  return f"<table class=sortable><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _hover(t: pd.DataFrame, extra: Sequence[str] = ()) -> list[str]:
  """Per trial: id, status, hyperparameters, steps, and `extra` columns."""
  hp = [c for c in t.columns if str(c).startswith(playbook.HP)]
  out = []
  for _, r in t.iterrows():
    parts = [f"<b>{html.escape(str(r['trial_id']))}</b>", f"status {r['status']}"]
    parts += [f"{c[len(playbook.HP):]} = {_fmt(r[c])}" for c in hp if pd.notna(r[c])]
    parts += [f"{c} = {_fmt(r[c])}" for c in ("train_steps", "goal_step", *extra) if c in r]
    out.append("<br>".join(parts))
  return out


# ----------------------------------------------------------------------------- sections

def _steps_to_result(ctx: fd.Context) -> list[str]:
  t = fd.scaling_trials(ctx)
  sc = scaling_curve(t, ctx.curves, groups=fd.SCALING_GROUPS)
  go = _go()
  fig = go.Figure()
  for label, g in sc.table.groupby(fd.SCALING_GROUPS, dropna=False, sort=True):
    name = " / ".join(map(str, label))
    g = g.sort_values("batch_size")
    y = g["steps_to_result"].to_numpy(dtype=float)
    up = np.where(np.isfinite(g["hi"]), g["hi"] - y, np.nan)
    text = [f"batch {int(r.batch_size)}<br>steps to result {describe_steps(r)}<br>"
            f"reached {r.n_reached} of {r.n_eligible}<br>step budget {_fmt(r.budget)}"
            for r in g.itertuples()]
    fig.add_trace(go.Scatter(x=g["batch_size"], y=y, mode="lines+markers", name=name,
                             error_y={"type": "data", "symmetric": False, "array": up,
                                      "arrayminus": np.zeros(len(g))},
                             hovertext=text, hoverinfo="text"))
    miss = g[g["censored"] == ">"]
    if len(miss):
      fig.add_trace(go.Scatter(x=miss["batch_size"], y=miss["budget"], mode="markers",
                               marker={"symbol": "triangle-up-open", "size": 12},
                               name=f"{name}: not reached (> budget)",
                               hovertext=[f"batch {int(b)}: not reached within {_fmt(s)} steps"
                                          for b, s in zip(miss["batch_size"], miss["budget"])],
                               hoverinfo="text"))
    fig.add_trace(go.Scatter(x=g["batch_size"], y=g["perfect_steps"], mode="lines",
                             line={"dash": "dash"}, name=f"{name}: perfect scaling"))
  for r in sc.estimates.itertuples():
    for name, value, censored in (("perfect-scaling limit", r.perfect_limit,
                                   r.perfect_limit_censored),
                                  ("maximal useful batch size", r.max_useful_batch,
                                   r.max_useful_batch_censored)):
      if not np.isfinite(value):
        continue
      y = 0.95 if "limit" in name else 0.85
      label = f"{name} {describe_regime(value, censored)}"
      if censored:  # an arrow pointing beyond the grid, not a line at its edge
        fig.add_annotation(x=math.log10(value * 1.8), y=y, yref="paper", ax=-80, ay=0,
                           text=label, showarrow=True, arrowhead=2, xanchor="right")
      else:
        # On a log axis an annotation takes log10(x), a shape takes x itself.
        fig.add_shape(type="line", x0=value, x1=value, y0=0, y1=1, yref="paper",
                      line={"dash": "dot" if "limit" in name else "dashdot", "width": 1})
        fig.add_annotation(x=math.log10(value), y=y, yref="paper", text=label,
                           showarrow=False, xanchor="right")
  fig.update_xaxes(type="log", title="batch size")
  fig.update_yaxes(type="log", title="steps to result")
  fig.update_layout(title="Steps to result (bars: one-sided 90% upper bound on a rerun's "
                    "median)", height=480)
  est = pd.DataFrame({
      "group": [" / ".join(map(str, r)) for r in
                sc.estimates[fd.SCALING_GROUPS].itertuples(index=False)],
      "perfect-scaling limit": [describe_regime(v, c) for v, c in zip(
          sc.estimates["perfect_limit"], sc.estimates["perfect_limit_censored"])],
      "max useful batch size": [describe_regime(v, c) for v, c in zip(
          sc.estimates["max_useful_batch"], sc.estimates["max_useful_batch_censored"])]})
  return [f"<p class=note>{html.escape(fd.STEPS_ESTIMAND)}: bounded above with 90% "
          "confidence by order statistics.</p>", _figure_div(fig), table(est)]


def _best_of_k(ctx: fd.Context) -> list[str]:
  tab = fd.best_of_k_table(ctx, max_studies=MAX_STUDIES)
  go = _go()
  fig = go.Figure()
  for sid, g in tab.groupby("study_id", sort=True):
    g = g.sort_values("k")
    text = [f"{sid}<br>k = {r.k}: median best {bounds.describe(r.median, bounds.Bound(r.lo, r.hi, r.sides), fmt=_fmt)}"
            f"<br>E[best] {_fmt(r.mean)}, P(inf) {_fmt(r.p_inf)}" for r in g.itertuples()]
    fig.add_trace(go.Scatter(x=g["k"], y=g["median"].replace([np.inf], np.nan),
                             mode="lines+markers", name=str(sid), hovertext=text,
                             hoverinfo="text"))
  fig.update_xaxes(type="log", title="k (trials of the protocol)")
  fig.update_yaxes(title="median best validation score of k")
  fig.update_layout(title="Best-of-k (hover: 90% bounds on a rerun's median best of k)",
                    height=480)
  return [_figure_div(fig)]


def _rankings(ctx: fd.Context) -> list[str]:
  t, scores, by = fd.ranking_scores(ctx)
  pairs = inclusion_check(scores, by=by, all_pairs=True)
  go = _go()
  out = [f"<p class=verdict>{html.escape(v)}</p>"
         for v in playbook.inclusion_verdicts(pairs, by)]
  fig = go.Figure()
  names = sorted(scores["optimizer"].astype(str).unique())
  groups = list(scores.groupby(by, dropna=False, sort=True))
  for j, (label, g) in enumerate(groups):
    name = " / ".join(map(str, label if isinstance(label, tuple) else (label,)))
    g = g.sort_values("best_val")
    # side by side per optimizer: the protocols' points do not hide each other
    x = [names.index(str(o)) + 0.12 * (j - (len(groups) - 1) / 2) for o in g["optimizer"]]
    y = g["best_val"].to_numpy(dtype=float)
    up = np.where(np.isfinite(g["val_hi"]), g["val_hi"] - y, np.nan)
    text = [f"{name}<br>{r.optimizer}: best val {_fmt(r.best_val)} (<= {_fmt(r.val_hi)})"
            f"<br>test at best {_fmt(r.test_at_best)}<br>best trial {r.best_trial_id}"
            f"<br>{r.n_trials} trials, {r.n_diverged} diverged" for r in g.itertuples()]
    fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=name,
                             error_y={"type": "data", "symmetric": False, "array": up,
                                      "arrayminus": np.zeros(len(g))},
                             hovertext=text, hoverinfo="text"))
  fig.update_xaxes(tickvals=list(range(len(names))), ticktext=names)
  fig.update_yaxes(title=fd.score_label(t))
  fig.update_layout(title="Best validation score per optimizer and protocol (bars: 90% "
                    "upper bound on a rerun's median best)", height=480)
  show = scores[by + ["optimizer", "n_trials", "n_diverged", "best_val", "val_hi",
                      "test_at_best", "best_trial_id"]]
  return out + [_figure_div(fig), table(show), "<p>Inclusion pairs:</p>",
                table(pairs.drop(columns=["relative_gap"]))]


def _parallel(ctx: fd.Context) -> list[str]:
  go = _go()
  out = []
  for sid in fd.study_order(ctx.trials)[:MAX_STUDIES]:
    g = ctx.trials[ctx.trials["study_id"] == sid]
    names = playbook.searched_params(g, ctx.spaces.get(str(sid)))
    dims = [d for d in (playbook.dimension(g, n, ctx.spaces.get(str(sid))) for n in names)
            if d is not None]
    score = pd.to_numeric(g[fd.SCORE], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(score)
    if not dims or ok.sum() < 2:
      continue
    cols = []
    for d in dims:
      v = d.values.loc[g.index].to_numpy(dtype=float)[ok]
      label = d.name
      if d.scale == "log":
        v, label = np.log10(v), f"log10 {d.name}"
      elif d.scale == "log1m":
        v, label = np.log10(1.0 - v), f"log10(1 - {d.name})"
      cols.append({"label": label, "values": v})
    cols.append({"label": "score", "values": score[ok]})
    fig = go.Figure(go.Parcoords(line={"color": score[ok], "colorscale": "Viridis_r",
                                       "showscale": True}, dimensions=cols))
    fig.update_layout(title=f"{sid}: searched hyperparameters and score "
                      f"({int(ok.sum())} finished trials; lower score is better)", height=380)
    out.append(_figure_div(fig))
  if not out:
    raise fd.NotApplicable("no study with a searched numeric hyperparameter and two "
                            "finished trials")
  return out


def _axis(ctx: fd.Context) -> list[str]:
  go = _go()
  out = []
  for sid in fd.study_order(ctx.trials)[:MAX_STUDIES]:
    g = ctx.trials[ctx.trials["study_id"] == sid]
    space = ctx.spaces.get(str(sid))
    dims = [d for d in (playbook.dimension(g, n, space)
                        for n in playbook.searched_params(g, space)) if d is not None]
    if not dims:
      continue
    bc = playbook.boundary_check(g, score_col=fd.SCORE, space=space)
    fig = go.Figure()
    score = pd.to_numeric(g[fd.SCORE], errors="coerce")
    hover = _hover(g, extra=(fd.SCORE,))
    for i, d in enumerate(dims):
      x = d.values.loc[g.index].to_numpy(dtype=float)
      fig.add_trace(go.Scatter(x=1.0 - x if d.scale == "log1m" else x, y=score,
                               mode="markers", name=d.name, visible=(i == 0) or "legendonly",
                               hovertext=hover, hoverinfo="text",
                               marker={"color": ["#d62728" if s != "ok" else "#1f77b4"
                                                 for s in g["status"]]}))
    fig.update_xaxes(type="log" if dims[0].scale in ("log", "log1m") else "linear",
                     title=("1 - " if dims[0].scale == "log1m" else "") + dims[0].name)
    flagged = bc[bc["flagged"].astype(bool)]["message"].tolist() if len(bc) else []
    fig.update_layout(title=f"{sid}: score vs hyperparameter (legend: pick the parameter; "
                      "red: diverged or failed)", height=380)
    out.append(_figure_div(fig))
    out += [f"<p class=note>Boundary: {html.escape(m)}</p>" for m in flagged]
  if not out:
    raise fd.NotApplicable("no study with a searched numeric hyperparameter")
  return out


def _isolation(ctx: fd.Context) -> list[str]:
  t = ctx.trials
  sci = fd.varying(t, fd.sci_columns(t))
  if not sci:
    raise fd.NotApplicable("no scientific hyperparameter (sci/*) varies across studies")
  go = _go()
  out = []
  for col in sci:
    own = "optimizer" if col == "sci/optimizer" else None
    by = [c for c in fd.varying(t, ["workload", "optimizer", "protocol_name"]) if c != own]
    tab = playbook.isolation(t, scientific=col, score_col=fd.SCORE, by=by)
    fig = go.Figure()
    groups = tab.groupby(by, dropna=False, sort=True) if by else [("", tab)]
    for label, g in groups:
      y = g["value"].to_numpy(dtype=float)
      up = np.where(np.isfinite(g["hi"]), g["hi"] - y, np.nan)
      fig.add_trace(go.Scatter(
          x=g[col].astype(str), y=y, mode="lines+markers", name=str(label),
          error_y={"type": "data", "symmetric": False, "array": up,
                   "arrayminus": np.zeros(len(g))},
          hovertext=[f"{col} = {v}<br>best {_fmt(b)} (trial {tid})<br>{n} trials"
                     for v, b, tid, n in zip(g[col], g["value"], g["best_trial_id"],
                                            g["n_trials"])], hoverinfo="text"))
    fig.update_layout(title=f"Isolation: best score per {col} (nuisance optimised away)",
                      height=400)
    note = fd.budget_note(t, col)
    if note:
      out.append(f"<p class=note><b>Different budgets:</b> {html.escape(note)}.</p>")
    out.append(_figure_div(fig))
  return out


def _curves(ctx: fd.Context) -> list[str]:
  if ctx.curves.empty:
    raise fd.NotApplicable("no evaluation curves")
  go = _go()
  out = []
  metric = fd.goal_metric(ctx.trials)
  col = f"val/{metric}"
  if col not in ctx.curves.columns:
    raise fd.NotApplicable(f"no {col} in the curves")
  by_trial = dict(tuple(ctx.curves.groupby("trial_id", sort=False)))
  for sid in fd.study_order(ctx.trials)[:MAX_STUDIES]:
    g = ctx.trials[ctx.trials["study_id"] == sid]
    order = playbook.scored_trials(g, fd.SCORE)["trial_id"].tolist()
    order += [tid for tid in g["trial_id"] if tid not in order]
    fig = go.Figure()
    for i, tid in enumerate(order):
      c = by_trial.get(tid)
      if c is None:
        continue
      c = c.sort_values("step")
      row = g[g["trial_id"] == tid]
      fig.add_trace(go.Scatter(x=c["step"], y=c[col], mode="lines", name=str(tid),
                               visible=True if i < SHOWN_CURVES else "legendonly",
                               hovertext=_hover(row)[0], hoverinfo="text+x+y"))
    fig.update_layout(title=f"{sid}: {col} per trial (best {SHOWN_CURVES} shown; click the "
                      "legend to add trials)", height=400, xaxis_title="step",
                      yaxis_title=col)
    out.append(_figure_div(fig))
  return out


SECTIONS: tuple[tuple[str, Callable[[fd.Context], list[str]]], ...] = (
    ("Steps to result", _steps_to_result),
    ("Best-of-k", _best_of_k),
    ("Rankings and inclusion check", _rankings),
    ("Parallel coordinates per study", _parallel),
    ("Hyperparameter axis plots", _axis),
    ("Isolation", _isolation),
    ("Training curves", _curves),
)


def render(ctx: fd.Context, title: str) -> str:
  """The whole page as one string."""
  parts = [f"<h1>{html.escape(title)}</h1>",
           f"<p class=note>Results directory: {html.escape(ctx.results_dir)}. Static "
           "version with every section and table: report.md beside this file.</p>",
           "<h2>Studies</h2>", table(fd.study_table(ctx.trials))]
  for name, build in SECTIONS:
    try:
      body = build(ctx)
    except fd.NotApplicable as e:
      body = [f"<p class=note>not applicable: {html.escape(str(e))}</p>"]
    except Exception as e:  # noqa: BLE001 - one broken section must not lose the page
      log.warning("report.html section %r failed", name, exc_info=True)
      body = [f"<p class=note>error while building this section: "
              f"{html.escape(type(e).__name__)}: {html.escape(str(e))}</p>"]
    parts += [f"<h2>{html.escape(name)}</h2>"] + body
  return ("<!DOCTYPE html><html><head><meta charset=utf-8>"
          f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
          f"<script>{_plotlyjs()}</script></head><body>" + "\n".join(parts)
          + f"<script>{_SCRIPT.replace('__CONFIG__', json.dumps(_CONFIG))}</script>"
          "</body></html>")
