"""Score AlgoPerf trial logs (or a harness results store) by AlgoPerf's official rule.

  python -m analysis.algoperf --logs=DIR --version=0.5 --ruleset=external_tuning \\
      [--out=OUTDIR] [--by=steps] [--baseline=NAME] [--ties=lowest|fastest|listing]
  python -m analysis.algoperf --results_dir=runs/algoperf_external [--out=OUTDIR]

prints the scores and ranks, the per-workload time table (median over studies,
and which rule made a cell +inf), the geometric-mean speedup against a baseline
submission (as AlgoPerf's scoring/compute_speedups.py reports it) and what was
skipped; with --out it also writes the performance-profile figure and the
tables as CSV. Where a study's counted trial hinges on how ties in evaluation
count are broken (the official code leaves it to the directory listing) and
that moves a median, a note says so, with the scores under each tie rule if
they differ. The rule is analysis.algoperf.scoring's, the targets and budgets
analysis.algoperf.versions', the log layout analysis.algoperf.logs'. Bad input
is one `error: ...` line, a non-zero exit and nothing written.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import sys
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.algoperf import logs as algoperf_logs
from analysis.algoperf import scoring as algoperf_scoring
from analysis.algoperf import store as algoperf_store
from analysis.algoperf import versions as algoperf_versions
from analysis.algoperf.scoring import Leaderboard
from analysis.algoperf.versions import RULESETS, Version

BY_FLAG = {"time": "time", "steps": "step"}
BASELINES = ("baseline", "prize_qualification_baseline")  # --baseline default: the first present
FIGURE = "performance_profile.png"
_SHORT = {algoperf_scoring.NOT_REACHED: "inf", algoperf_scoring.NOT_RUN: "not run",
          algoperf_scoring.AFTER_BUDGET: "inf (budget)", algoperf_scoring.BASE_MISSED: "base",
          algoperf_scoring.OVER_RATIO: "4x"}
_TIE_WORDS = {"lowest": "the lowest trial number", "fastest": "the fastest of them",
              "listing": "the first in the directory listing"}
LEGEND = ("inf: the median study missed the target; not run: no logs; inf (budget): reached "
          "only after the max runtime;",
          "X -> inf (4x): over 4x the fastest; (variant): its held-out variant missed; (base): "
          "its base workload missed")


class ScoreError(ValueError):
  """Bad input: one line, no traceback."""


@dataclasses.dataclass(frozen=True)
class Scored:
  """A leaderboard and what was read to make it."""
  board: Leaderboard
  source: str                  # the directory read
  n_logs: int
  problems: list[str]          # skipped files and folders ('path: reason')
  unscored: dict[str, list[str]]  # submission -> logged workloads the version does not score
  notes: list[str]             # layout checks (studies / trials per study)


def resolve_logs(logs: str, ruleset: str) -> str:
  """DIR, or DIR/<ruleset> when DIR is the published `logs/` folder of ruleset folders."""
  if os.path.isdir(os.path.join(logs, ruleset)):
    return os.path.join(logs, ruleset)
  others = [r for r in RULESETS if os.path.isdir(os.path.join(logs, r))]
  if others:
    raise ScoreError(f"--logs={logs}: no {ruleset}/ folder (it holds "
                     f"{', '.join(r + '/' for r in others)}); pick --ruleset accordingly")
  return logs


def score_logs(logs: str, version: str = "0.5", ruleset: str = "external_tuning",
               by: str = "time", ties: str | None = None) -> Scored:
  """Read AlgoPerf logs under `logs` and score them; ScoreError on bad input.

  `ties`: the tie-break of trials reaching the target at the same evaluation
  count (analysis.algoperf.scoring.TIES); None: the version's.
  """
  v = get_version(version)
  _check(ruleset, by, ties)
  if not os.path.isdir(logs):
    raise ScoreError(f"--logs={logs}: not a directory")
  root = resolve_logs(logs, ruleset)
  read = algoperf_logs.read(root, {t.metric for t in v.targets.values()})
  if read.trials.empty:
    raise ScoreError(f"--logs={logs}: no AlgoPerf trial logs (<submission>/study_<n>/"
                     f"<workload>_<framework>/trial_<n>/{algoperf_logs.MEASUREMENTS})")
  scored = set(v.scored_workloads)
  if not read.trials["workload"].isin(scored).any():
    found = ", ".join(sorted(read.trials["workload"].unique()))
    raise ScoreError(f"--logs={logs}: no workload scored in AlgoPerf v{v.name} "
                     f"(found: {found})")
  evals = algoperf_logs.target_evals(read, {w: t.metric for w, t in v.targets.items()})
  board = algoperf_scoring.leaderboard(read.trials, evals, v, ruleset=ruleset, by=BY_FLAG[by],
                                     ties=ties)
  return Scored(board, root, len(read.trials), read.problems,
                _unscored(read.trials, scored), _layout_notes(board, ruleset) + _tie_notes(board))


def score_store(results_dir: str, ruleset: str = "external_tuning", by: str = "time",
                ties: str | None = None) -> Scored:
  """Score a harness results store (analysis.algoperf.store's mapping)."""
  from analysis.results import load  # only this path needs the store reader
  _check(ruleset, by, ties)
  if not os.path.isdir(results_dir):
    raise ScoreError(f"--results_dir={results_dir}: not a directory")
  quiet = logging.getLogger("analysis.results")
  quiet.addFilter(_no_warnings)  # one warning per skipped file; the summary counts them
  try:
    results = load(results_dir)
  finally:
    quiet.removeFilter(_no_warnings)
  if results.trials.empty:
    raise ScoreError(f"--results_dir={results_dir}: no trial records (record.json)")
  trials, evals, v, problems = algoperf_store.tables(results)
  if not v.base_workloads:
    raise ScoreError(f"--results_dir={results_dir}: no workload with a goal to score")
  board = algoperf_scoring.leaderboard(trials, evals, v, ruleset=ruleset, by=BY_FLAG[by],
                                     ties=ties)
  return Scored(board, results_dir, len(trials), results.problems + problems, {},
                _layout_notes(board, ruleset) + _tie_notes(board))


def _no_warnings(record: logging.LogRecord) -> bool:
  return record.levelno != logging.WARNING


def get_version(name: str, flag: str = "--version") -> Version:
  """The AlgoPerf version's scoring facts (ScoreError naming `flag` if unknown)."""
  try:
    return algoperf_versions.get(name)
  except KeyError:
    raise ScoreError(f"{flag}={name}: unknown AlgoPerf version (known: "
                     f"{', '.join(algoperf_versions.VERSIONS)})") from None


def _check(ruleset: str, by: str, ties: str | None = None) -> None:
  if ruleset not in RULESETS:
    raise ScoreError(f"--ruleset={ruleset}: unknown (known: {', '.join(RULESETS)})")
  if by not in BY_FLAG:
    raise ScoreError(f"--by={by}: unknown (known: {', '.join(BY_FLAG)})")
  if ties is not None and ties not in algoperf_scoring.TIES:
    raise ScoreError(f"--ties={ties}: unknown (known: {', '.join(algoperf_scoring.TIES)})")


def _unscored(trials: pd.DataFrame, scored: set[str]) -> dict[str, list[str]]:
  other = trials[~trials["workload"].isin(scored)]
  return {s: sorted(g["workload"].unique()) for s, g in other.groupby("submission")}


def _layout_notes(board: Leaderboard, ruleset: str) -> list[str]:
  """Submission/workload pairs whose studies or trials per study differ from the protocol."""
  v, s = board.version, board.studies
  if v.name == algoperf_store.HARNESS:
    return []
  trials = v.num_trials if ruleset == "external_tuning" else 1
  shapes: dict[str, list[str]] = collections.defaultdict(list)
  for (sub, wl), g in s.groupby(["submission", "workload"]):
    if len(g) != v.num_studies or (g["n_trials"] != trials).any():
      per = ",".join(str(int(n)) for n in g["n_trials"])
      shapes[f"{len(g)} studies of {per} trials"].append(f"{sub} / {wl}")
  expect = f"v{v.name} {ruleset} expects {v.num_studies} studies of {trials} trial(s)"
  return [f"{len(pairs)} submission/workload pair(s) ran {shape} ({expect}): "
          + ", ".join(pairs[:3]) + (", ..." if len(pairs) > 3 else "")
          for shape, pairs in shapes.items()]


def by_tie_rule(board: Leaderboard) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
  """The board's medians and scores under each tie-break of algoperf_scoring.TIES.

  rule -> (median: submissions x scored workloads, score per submission); the
  board's own rule gives its own tables.
  """
  v, subs = board.version, list(board.score.index)
  out = {}
  for t in algoperf_scoring.TIES:
    if t == board.ties:
      out[t] = (board.median, board.score)
      continue
    studies = algoperf_scoring.study_times(board.trials, board.by, t)
    median = algoperf_scoring.median_times(studies, list(v.scored_workloads), subs)
    scored, _ = algoperf_scoring.held_out_rule(median, v)
    out[t] = (median, algoperf_scoring.profiles(scored, v)[2])
  return out


def _tie_notes(board: Leaderboard) -> list[str]:
  """Where the tie-break moves a median, and the scores each rule gives if they differ."""
  rules = by_tie_rule(board)
  meds = pd.DataFrame({t: m.stack(future_stack=True) for t, (m, _) in rules.items()}).dropna()
  lo, hi = meds.min(axis=1), meds.max(axis=1)
  moved = meds[(hi > lo) & ~(np.isinf(lo) & np.isinf(hi))]
  if moved.empty:
    return []
  pairs = [f"{s} / {w} (" + ", ".join(f"{t} {_num(r[t], board.by)}" for t in rules) + ")"
           for (s, w), r in moved.iterrows()]
  lines = [f"{len(pairs)} median(s) depend on how trials tied on evaluation count are broken "
           f"(--ties, used: {board.ties}): " + "; ".join(pairs[:3])
           + ("; ..." if len(pairs) > 3 else "")]
  scores = pd.DataFrame({t: sc for t, (_, sc) in rules.items()}).round(4)
  if (scores.nunique(axis=1) > 1).any():
    lines.append("scores by tie-break: " + "; ".join(
        f"{t}: " + ", ".join(f"{s} {x:.4f}" for s, x in scores[t].items()) for t in rules))
  return lines


def baseline_name(board: Leaderboard, requested: str | None) -> str | None:
  """The submission the speedups are relative to (ScoreError if not present)."""
  subs = list(board.score.index)
  if requested:
    if requested not in subs:
      raise ScoreError(f"--baseline={requested}: not a submission here (have: "
                       f"{', '.join(subs)})")
    return requested
  return next((b for b in BASELINES if b in subs), None)


# ------------------------------------------------------------------------------ text

def _num(x: float, by: str) -> str:
  if not math.isfinite(x):
    return "inf"
  return f"{x:.0f}" if by == "step" else f"{x:.2f}"


def cell(median: float, scored: float, why: str, by: str) -> str:
  """'7222.52', 'inf', 'not run', '12504.55 -> inf (4x)', ..."""
  if math.isfinite(scored):
    return _num(scored, by)
  tag = _SHORT.get(why, "variant" if why.startswith(algoperf_scoring.VARIANT_MISSED) else
                   why.removesuffix(" the fastest").removeprefix("over "))
  if math.isfinite(median):
    return f"{_num(median, by)} -> inf ({tag})"
  return tag


def _table(rows: list[list[str]]) -> list[str]:
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def time_table(board: Leaderboard) -> list[str]:
  """Workloads x submissions: the median time to target and what the rule did to it."""
  subs = list(board.score.index)
  v = board.version
  rows = [["workload"] + subs]
  for w in v.scored_workloads:
    if w in v.held_out and w == next(iter(v.held_out)):
      rows.append(["(held-out)"] + [""] * len(subs))
    rows.append([w] + [cell(board.median.at[s, w], board.scored.at[s, w], board.why.at[s, w],
                            board.by) for s in subs])
  return _table(rows)


def speedup_lines(board: Leaderboard, baseline: str) -> list[str]:
  sp = algoperf_scoring.speedups(board.median, baseline, board.version, board.ruleset)
  rows = [["submission", "speedup", ""]]
  for s, r in sp.iterrows():
    if s == baseline:
      continue
    word = "faster" if r["faster"] >= 0 else "slower"
    rows.append([str(s), f"{r['speedup']:.4f}", f"roughly {abs(r['faster']):.1%} {word}"])
  return _table(rows)


def summary(res: Scored, baseline: str | None) -> list[str]:
  """The printed report."""
  b, v = res.board, res.board.version
  clock = "global steps" if b.by == "step" else "submission time (s)"
  what = (f"AlgoPerf v{v.name} {b.ruleset}" if v.name != algoperf_store.HARNESS
          else "harness store, AlgoPerf's rule (targets: each workload's goal)")
  lines = [f"{what}, by {clock}: {len(b.score)} submissions, {res.n_logs} trial logs under "
           f"{res.source}"]
  if res.problems:
    kinds = [(p.split(": ", 1) + [""])[:2] for p in res.problems]
    kinds = [(path, why.split(" (")[0]) for path, why in kinds]
    first: dict[str, str] = {}
    for path, why in kinds:
      first.setdefault(why, path)
    lines.append(f"skipped {len(res.problems)} item(s):")
    lines += [f"  {n} x {why} (e.g. {first[why]})"
              for why, n in collections.Counter(w for _, w in kinds).most_common()]
  for sub, wls in res.unscored.items():
    lines.append(f"not scored in v{v.name} (logged, not a base or held-out workload): "
                 f"{sub}: {', '.join(wls)}")
  lines += [f"note: {n}" for n in res.notes]
  taus = v.taus()
  lines += ["", f"Scores: area under the performance profile, tau {taus[0]:g}..{taus[-1]:g} "
            f"({len(taus)} points), / {taus[-1] - taus[0]:g}; 1 = fastest on every base "
            "workload"]
  order = b.score.sort_values(ascending=False, kind="stable").index
  lines += _table([["rank", "submission", "score"]]
                  + [[str(b.rank[s]), str(s), f"{b.score[s]:.4f}"] for s in order])
  unit = "steps" if b.by == "step" else "s"
  lines += ["", f"Time to target ({unit}): median over studies of the trial that reached it in "
            f"the fewest evaluations (ties: {_TIE_WORDS[b.ties]})", *time_table(b),
            *(f"  {x}" for x in LEGEND)]
  if baseline is not None:
    lines += ["", f"Speedup against {baseline}: geometric mean over base workloads of median "
              f"time / {baseline}'s, a miss counting as the max runtime + 1 s "
              "(AlgoPerf's compute_speedups); < 1 is faster"]
    lines += (speedup_lines(b, baseline) if b.by == "time" else
              ["  (by time only: a miss is priced at the runtime budget, which has no "
               "step equivalent)"])
  return lines


# ------------------------------------------------------------------------------ files

def write(res: Scored, out: str, baseline: str | None) -> list[str]:
  """Tables as CSV, the problems and the performance-profile figure under `out`."""
  from analysis import plots  # matplotlib only when a figure is written
  b = res.board
  os.makedirs(out, exist_ok=True)
  paths = []

  def save(frame: pd.DataFrame, name: str, **kw) -> None:
    path = os.path.join(out, name)
    frame.to_csv(path + ".tmp", **kw)
    os.replace(path + ".tmp", path)
    paths.append(path)

  scores = pd.DataFrame({"rank": b.rank, "score": b.score}).sort_values("rank")
  save(scores.rename_axis("submission"), "scores.csv")
  long = pd.DataFrame({"median": b.median.stack(future_stack=True),
                       "scored": b.scored.stack(future_stack=True),
                       "why": b.why.stack(future_stack=True)}).reset_index()
  long.insert(2, "held_out_of", long["workload"].map(dict(b.version.held_out)))
  save(long, "time_to_target.csv", index=False)
  save(b.studies, "studies.csv", index=False)
  save(b.profile, "performance_profile.csv")
  if baseline is not None and b.by == "time":
    save(algoperf_scoring.speedups(b.median, baseline, b.version, b.ruleset), "speedups.csv")
  problems = os.path.join(out, "problems.txt")
  with open(problems + ".tmp", "w", encoding="utf-8") as f:
    f.write("".join(p + "\n" for p in res.problems))
  os.replace(problems + ".tmp", problems)
  paths.append(problems)
  title = (f"AlgoPerf v{b.version.name} {b.ruleset}, by {'steps' if b.by == 'step' else 'time'}"
           if b.version.name != algoperf_store.HARNESS else "harness store, AlgoPerf rule")
  paths.append(plots.performance_profile_plot(b.profile, os.path.join(out, FIGURE),
                                              score=b.score, title=title))
  return paths


def _prepare_out(out: str) -> None:
  """Fail before anything is written if `out` cannot be a folder."""
  probe = out
  while probe and not os.path.exists(probe):
    probe = os.path.dirname(probe.rstrip(os.sep)) or "."
  if os.path.exists(out) and not os.path.isdir(out):
    raise ScoreError(f"--out={out}: not a directory")
  if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
    raise ScoreError(f"--out={out}: cannot create (no writable folder above it)")


# --------------------------------------------------------------------------------- CLI

def run(*, logs: str | None, results_dir: str | None, version: str, ruleset: str, by: str,
        out: str | None, baseline: str | None, ties: str | None = None) -> list[str]:
  """The whole command as a function: the printed lines (ScoreError on bad input)."""
  if bool(logs) == bool(results_dir):
    raise ScoreError("give one of --logs=DIR (AlgoPerf logs) or --results_dir=DIR (a harness "
                     "results store)")
  if out:
    _prepare_out(out)
  res = (score_logs(logs, version, ruleset, by, ties) if logs
         else score_store(results_dir, ruleset, by, ties))
  base = baseline_name(res.board, baseline)
  lines = summary(res, base)
  if out:
    lines += ["", f"wrote to {out}: " + ", ".join(os.path.relpath(p, out)
                                                  for p in write(res, out, base))]
  return lines


def define_flags() -> None:
  """Flags exist only when run as a program (as in analysis.report)."""
  from absl import flags
  flags.DEFINE_string("logs", None, "AlgoPerf logs: a folder of <submission>/study_<n>/"
                      "<workload>_<framework>/trial_<n>/eval_measurements.csv (or the "
                      "published logs/ folder holding one folder per ruleset).")
  flags.DEFINE_string("results_dir", None, "Instead of --logs: a harness results store, "
                      "scored the AlgoPerf way (submission = optimizer | protocol; targets = "
                      "each workload's goal; no held-out workloads, no runtime cap).")
  flags.DEFINE_string("version", "0.5", "AlgoPerf version whose targets, budgets, held-out "
                      f"workloads and tau grid apply: {', '.join(algoperf_versions.VERSIONS)}.")
  flags.DEFINE_string("ruleset", "external_tuning", f"{' or '.join(RULESETS)}: sets the "
                      "runtime budget (self-tuning: 3x in v0.5, 1.5x in v0.6) and the "
                      "expected trials per study.")
  flags.DEFINE_string("by", "time", "time: score submission time (AlgoPerf's); steps: score "
                      "global steps instead (the budget cap still applies in time).")
  flags.DEFINE_string("baseline", None, "Submission the speedups are relative to (default: "
                      f"{' or '.join(BASELINES)} when present, else no speedups).")
  flags.DEFINE_string("ties", None, "Which of the trials reaching the target at the same "
                      "evaluation count a study counts: lowest (trial number), fastest (soonest "
                      "on the scored clock), listing (first in this machine's directory "
                      "listing, as AlgoPerf's code does). Default: the version's (0.5: lowest, "
                      "0.6: fastest, the rules that reproduce their references).")
  flags.DEFINE_string("out", None, "Folder for performance_profile.png, scores.csv, "
                      "time_to_target.csv, studies.csv, performance_profile.csv, "
                      "speedups.csv and problems.txt (created if missing).")


def main(argv: Sequence[str]) -> int:
  from absl import flags
  f = flags.FLAGS
  try:
    if len(argv) > 1:
      raise ScoreError(f"unexpected arguments {' '.join(argv[1:])}")
    lines = run(logs=f.logs, results_dir=f.results_dir, version=f.version, ruleset=f.ruleset,
                by=f.by, out=f.out, baseline=f.baseline, ties=f.ties)
  except ScoreError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print("\n".join(lines))
  return 0
