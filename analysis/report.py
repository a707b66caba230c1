"""A Markdown report of a results directory: every analysis that applies, with figures.

  python -m analysis.report --results_dir=DIR --out=OUTDIR

writes OUTDIR/report.md and OUTDIR/figures/*.png, and OUTDIR/report.html
(analysis.html_report: the same figures, interactive, in one offline file;
--nohtml skips it). Every section is always
present; one that does not apply to these results says "not applicable:
<reason>", so a reader knows it was considered. Scores are best/val/<goal
metric> of each trial (retrospective checkpoint selection), lower is better;
diverged trials score +inf where a budget is spent on them (best-of-k,
rankings, isolation). Keep OUTDIR outside DIR: files there would be reported as
foreign on the next load.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable, Sequence

from analysis import html_report
from analysis.figure_data import (FIGURES, Context, NotApplicable, context, experiment_title,
                                  no_records)
from analysis.report_sections import SECTIONS, text

REPORT = "report.md"

log = logging.getLogger(__name__)


class ReportError(ValueError):
  """Bad input (missing results dir, unwritable output): one line, no traceback."""


# ------------------------------------------------------------------------------ driver

def _section(ctx: Context, title: str, build: Callable[[Context], list[str]]) -> list[str]:
  try:
    body = build(ctx)
  except NotApplicable as e:
    body = [f"not applicable: {e}"]
  except Exception as e:  # noqa: BLE001 - one broken section must not lose the report
    log.warning("report section %r failed", title, exc_info=True)
    body = [f"error while building this section: {type(e).__name__}: {e}"]
  return [f"## {title}", ""] + body + [""]


def _prepare_out(out_dir: str) -> None:
  try:
    os.makedirs(os.path.join(out_dir, FIGURES), exist_ok=True)
  except OSError as e:
    raise ReportError(f"--out {out_dir}: cannot create ({e.strerror or e})") from None
  if not os.access(out_dir, os.W_OK):
    raise ReportError(f"--out {out_dir}: not writable")


def write_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                 n_boot: int = 1000, k_curves: int = 3, seed: int = 0,
                 html: bool = True) -> str:
  """Write OUTDIR/report.md (and figures/, and report.html unless html=False) for a
  results directory; return the path of report.md.

  Raises ReportError (one line), writing nothing, for a missing results
  directory, one without trial records, or an unwritable output folder.
  """
  results_dir, out_dir = os.fspath(results_dir), os.fspath(out_dir)
  if not os.path.isdir(results_dir):
    raise ReportError(f"--results_dir {results_dir}: not a directory")
  ctx = context(results_dir, out_dir, n_boot=n_boot, k_curves=k_curves, seed=seed)
  if ctx.trials.empty:
    raise ReportError(no_records(results_dir, ctx.results.problems))
  _prepare_out(out_dir)
  title = experiment_title(ctx.trials, results_dir)
  lines = [f"# {text(title)}", ""]
  for name, build in SECTIONS:
    lines += _section(ctx, name, build)
  path = _write(out_dir, REPORT, "\n".join(lines).rstrip() + "\n")
  if html:
    _write(out_dir, html_report.REPORT_HTML, html_report.render(ctx, title))
  return path


def _write(out_dir: str, name: str, content: str) -> str:
  """Write OUTDIR/name atomically (temp + rename); one line on failure."""
  path = os.path.join(out_dir, name)
  try:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.write(content)
    os.replace(path + ".tmp", path)
  except OSError as e:
    raise ReportError(f"--out {out_dir}: cannot write {name} ({e.strerror or e})") from None
  return path


# --------------------------------------------------------------------------------- CLI

def _define_flags() -> None:
  """Flags exist only when run as a program, so importers' own flags never clash."""
  from absl import flags
  flags.DEFINE_string("results_dir", None, "Results directory to report on (a bench output "
                      "folder of <study_id>/study.json and <study_id>/<trial>/record.json).")
  flags.DEFINE_string("out", None, "Output folder for report.md and figures/ (created if "
                      "missing; keep it outside --results_dir).")
  flags.DEFINE_integer("n_boot", 1000, "Bootstrap replicates behind the rank bands across "
                       "training budgets (every other bound is exact, from order statistics).")
  flags.DEFINE_bool("html", True, "Also write report.html: the figures as interactive, "
                    "self-contained plots (offline; --nohtml skips it).")
  flags.DEFINE_integer("k_curves", 3, "Best trials per study whose training curves are drawn.")
  flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resampling.")
  flags.mark_flags_as_required(["results_dir", "out"])


def main(argv: Sequence[str]) -> int:
  from absl import flags
  if len(argv) > 1:
    print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
    return 1
  f = flags.FLAGS
  skipped = _SkipCounter()
  logging.getLogger("analysis.results").addFilter(skipped)  # report.md lists them all
  try:
    path = write_report(f.results_dir, f.out, n_boot=f.n_boot, k_curves=f.k_curves,
                        seed=f.seed, html=f.html)
  except ReportError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if skipped.count:
    print(f"note: {skipped.count} file(s) skipped while loading (listed under Load problems)",
          file=sys.stderr)
  print(path)
  return 0


class _SkipCounter(logging.Filter):
  """Counts analysis.load's per-file warnings instead of printing thousands of lines."""

  def __init__(self) -> None:
    super().__init__()
    self.count = 0

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno == logging.WARNING:
      self.count += 1
      return False
    return True


if __name__ == "__main__":
  from absl import app
  _define_flags()
  app.run(main)
