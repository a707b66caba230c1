"""Coverage of the harness's intervals, measured on synthetic studies of known truth.

  python -m analysis.calibration [--reps=400] [--seed=0]

prints one row per interval and setting: the estimand, the nominal level, the
sides, the measured coverage (or, for a test, the false-positive rate) and how
many simulated studies measured it. Studies are drawn from known distributions
(several shapes, with trials that never reach the goal and trials that
diverge), sent through the same public functions the report uses
(analysis.steps_to_result.scaling_curve, analysis.best_of_k.best_of_k,
analysis.rankings.optimizer_scores / inclusion_check), and each interval is
checked against the truth computed from the distribution.

Why hand-written: no library simulates these estimands (the median over
reruns of a study's best of k trials, quantised to an evaluation grid, with
failure mass at +inf); the checks use only numpy and scipy.stats.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis import bounds
from analysis import schema
from analysis.best_of_k import best_of_k
from analysis.budget_rankings import budget_rankings
from analysis.clock_rankings import clock_rankings
from analysis.rankings import inclusion_check, optimizer_scores, protocol_rank_changes
from analysis.steps_to_result import scaling_curve

EVAL_EVERY = 10  # steps between evaluations: goal steps are quantised up to this grid


@dataclasses.dataclass(frozen=True)
class Shape:
  """A trial distribution: finite scores from `dist` with `p_fail` of trials at +inf."""
  name: str
  dist: stats.rv_continuous   # frozen scipy distribution of a trial's raw score
  p_fail: float = 0.0         # never reached the goal / diverged: scores +inf

  def draw(self, rng: np.random.Generator, n: int, grid: float = 0.0) -> np.ndarray:
    x = self.dist.rvs(size=n, random_state=rng)
    if grid:
      x = np.ceil(x / grid) * grid
    x[rng.random(n) < self.p_fail] = np.inf
    return x

  def quantile(self, p: float, grid: float = 0.0) -> float:
    """The p-quantile of the scores (inf where the failure mass holds it)."""
    if p >= 1.0 - self.p_fail:
      return math.inf
    q = float(self.dist.ppf(p / (1.0 - self.p_fail)))
    return math.ceil(q / grid - 1e-9) * grid if grid else q


# Goal steps: log-normal as in the simulation; a heavy right tail; a gamma.
STEP_SHAPES = (
    Shape("lognormal, 20% never reach", stats.lognorm(s=0.6, scale=800), 0.2),
    Shape("log-t (heavy tail), 10% never reach", stats.t(df=3, loc=6.5, scale=0.4), 0.1),
    Shape("gamma, 30% never reach", stats.gamma(a=3.0, scale=300), 0.3),
)
# Validation scores (errors): continuous, some diverged.
SCORE_SHAPES = (
    Shape("beta errors, 10% diverged", stats.beta(a=2, b=12), 0.1),
    Shape("uniform errors, none diverged", stats.uniform(0.05, 0.3), 0.0),
)


def _exp_steps(shape: Shape) -> Shape:
  """log-t draws log steps: exponentiate (kept a Shape so quantiles stay exact)."""
  if not shape.name.startswith("log-t"):
    return shape
  base = shape.dist

  class _Exp:
    def rvs(self, size, random_state):
      return np.exp(base.rvs(size=size, random_state=random_state))

    def ppf(self, p):
      return np.exp(base.ppf(p))
  return dataclasses.replace(shape, dist=_Exp())


@dataclasses.dataclass
class Row:
  interval: str
  estimand: str
  setting: str
  sides: str
  nominal: str
  measured: float
  studies: int

  def line(self) -> str:
    return (f"| {self.interval} | {self.setting} | {self.sides} | {self.nominal} | "
            f"{100 * self.measured:.1f}% | {self.studies} |")


def _study_frames(steps_by_batch: dict[int, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
  """Trials and curves tables (analysis.load's columns that scaling_curve reads)."""
  trials, curves = [], []
  budget = EVAL_EVERY * 400
  for b, steps in steps_by_batch.items():
    for i, s in enumerate(steps):
      tid = f"b{b}-t{i}"
      trials.append({"trial_id": tid, "trial_index": i, "batch_size": b, "status": "ok",
                     "goal_metric": "error", "goal_threshold": 0.5})
      last = min(s, budget) if math.isfinite(s) else budget
      curves += [{"trial_id": tid, "step": float(st), "val/error": 1.0}
                 for st in (EVAL_EVERY, last) if st != s]
      if math.isfinite(s) and s <= budget:
        curves.append({"trial_id": tid, "step": float(s), "val/error": 0.0})
  return pd.DataFrame(trials), pd.DataFrame(curves)


def steps_to_result_coverage(shape: Shape, n: int, reps: int, rng: np.random.Generator
                             ) -> tuple[float, str]:
  """Share of simulated studies whose scaling_curve bound covers the rerun median."""
  shape = _exp_steps(shape)
  truth = shape.quantile(bounds.level(n), EVAL_EVERY)
  truth = truth if truth <= EVAL_EVERY * 400 else math.inf  # beyond the budget: not reached
  hits, sides = 0, set()
  for _ in range(reps):
    steps = {b: shape.draw(rng, n, EVAL_EVERY) for b in (64, 256)}
    # A goal step beyond the budget is 'not reached' in the record, as in a real study.
    steps = {b: np.where(s <= EVAL_EVERY * 400, s, np.inf) for b, s in steps.items()}
    trials, curves = _study_frames(steps)
    table = scaling_curve(trials, curves).table
    for row in table.itertuples():
      sides.add(row.sides)
      hits += _covers(row.lo, row.hi, truth)
  return hits / (2 * reps), "/".join(sorted(sides))


def _covers(lo: float, hi: float, truth: float) -> bool:
  lo = -math.inf if math.isnan(lo) else lo
  hi = math.inf if math.isnan(hi) else hi
  return lo <= truth <= hi


def best_of_k_coverage(shape: Shape, n: int, k: int, reps: int, rng: np.random.Generator
                       ) -> tuple[float, str]:
  """Share of simulated studies whose best_of_k bound at k covers the rerun median best of k."""
  truth = shape.quantile(bounds.level(k))
  hits, sides = 0, set()
  for _ in range(reps):
    v = shape.draw(rng, n)
    trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "study_id": "s",
                           "trial_index": range(n), "status": "ok", "goal_metric": "error",
                           "best/val/error": v, "best/test/error": v})
    row = best_of_k(trials, ks=[k]).iloc[0]
    sides.add(row["sides"])
    hits += _covers(row["lo"], row["hi"], truth)
  return hits / reps, "/".join(sorted(sides))


def _optimizer_studies(shape: Shape, n: int, optimizers: Sequence[str],
                       rng: np.random.Generator) -> pd.DataFrame:
  """One study of n trials per optimizer, every score drawn from `shape`."""
  rows = []
  for opt in optimizers:
    rows += [{"trial_id": f"{opt}{i}", "workload": "w", "protocol_name": "p",
              "optimizer": opt, "trial_index": i, "status": "ok", "goal_metric": "error",
              "best/val/error": x, "best/test/error": x}
             for i, x in enumerate(shape.draw(rng, n))]
  return pd.DataFrame(rows)


def ranking_coverage(shape: Shape, n: int, reps: int, rng: np.random.Generator
                     ) -> tuple[float, str]:
  """optimizer_scores' bound on each optimizer's rerun median best validation score."""
  truth = shape.quantile(bounds.level(n))
  hits, sides = 0, set()
  for _ in range(reps):
    scores = optimizer_scores(_optimizer_studies(shape, n, ("sgd", "adam"), rng))
    for r in scores.itertuples():
      sides.add(r.val_sides)
      hits += _covers(r.val_lo, r.val_hi, truth)
  return hits / (2 * reps), "/".join(sorted(sides))


def inclusion_false_positive_rate(shape: Shape, n: int, reps: int, rng: np.random.Generator
                                  ) -> float:
  """Share of studies where inclusion_check calls a violation beyond noise although the
  special and general optimizers draw from one distribution (the null)."""
  beyond = 0
  for _ in range(reps):
    studies = _optimizer_studies(shape, n, ("sgd", "momentum"), rng)
    pairs = inclusion_check(optimizer_scores(studies), all_pairs=True)
    beyond += bool(pairs["beyond_noise"].any())
  return beyond / reps


def protocol_change_false_positive_rate(shape: Shape, n: int, reps: int,
                                       rng: np.random.Generator, n_opts: int = 4) -> float:
  """Share of experiments (n_opts optimizers x 2 protocols, every score from one
  distribution) in which protocol_rank_changes reports any change of order."""
  hits = 0
  opts = [f"opt{i}" for i in range(n_opts)]
  for _ in range(reps):
    a = _optimizer_studies(shape, n, opts, rng).assign(protocol_name="narrow")
    b = _optimizer_studies(shape, n, opts, rng).assign(protocol_name="wide")
    hits += len(protocol_rank_changes(optimizer_scores(pd.concat([a, b])))) > 0
  return hits / reps


def clock_move_false_positive_rate(n: int, reps: int, rng: np.random.Generator,
                                   n_subs: int = 4, pace_noise: float = 0.1) -> float:
  """Share of submissions called 'moved' (steps vs seconds) beyond noise when every
  submission has the same cost per step (log-normal noise `pace_noise` per trial) and
  the same goal-step distribution: any move is then noise."""
  shape = _exp_steps(STEP_SHAPES[0])
  moved = total = 0
  for _ in range(reps):
    trials, curves = [], []
    for sub in range(n_subs):
      for i in range(n):
        tid = f"s{sub}-{i}"
        goal = float(shape.draw(rng, 1, EVAL_EVERY)[0])
        goal = goal if math.isfinite(goal) else 4 * EVAL_EVERY * 100
        trials.append({"trial_id": tid, "study_id": f"s{sub}", "workload": "w",
                       "submission": f"sub{sub}", "trial_index": i, "status": "ok",
                       "goal_metric": "error", "goal_threshold": 0.5,
                       "steps_per_sec": 1.0 / (0.1 * math.exp(rng.normal(0, pace_noise))),
                       "pack_size": 1})
        curves += [{"trial_id": tid, "step": goal, "val/error": 0.0, "wall_time": goal}]
    cr = clock_rankings(schema.conform_trials(pd.DataFrame(trials)),
                        schema.conform_curves(pd.DataFrame(curves)), clock="steps_per_sec")
    moved += int(cr.summary["n_moved"].iloc[0])
    total += n_subs
  return moved / total


def budget_swap_false_positive_rate(n: int, reps: int, rng: np.random.Generator,
                                    n_boot: int = 200) -> float:
  """Share of studies where budget_rankings reports a swap beyond noise between two
  optimizers whose learning curves come from one distribution (every swap is noise).

  A trial's validation error at step t is c + a * exp(-t / tau) with c, a, tau
  drawn per trial, plus 2% evaluation noise; 10 evaluations over 100 steps."""
  steps = np.arange(10, 101, 10, dtype=float)
  hits = 0
  for _ in range(reps):
    trials, curves = [], []
    for opt in ("A", "B"):
      for i in range(n):
        tid = f"{opt}{i}"
        c, a, tau = rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.7), rng.lognormal(3.0, 0.5)
        err = c + a * np.exp(-steps / tau) + rng.normal(0, 0.02, size=len(steps))
        trials.append({"trial_id": tid, "study_id": opt, "workload": "w", "optimizer": opt,
                       "trial_index": i, "status": "ok", "goal_metric": "error",
                       "goal_threshold": 0.0, "train_steps": 100})
        curves += [{"trial_id": tid, "step": st, "val/error": e, "test/error": e}
                   for st, e in zip(steps, err)]
    br = budget_rankings(schema.conform_trials(pd.DataFrame(trials)),
                         schema.conform_curves(pd.DataFrame(curves)), n_boot=n_boot,
                         seed=int(rng.integers(1 << 31)))
    hits += bool(len(br.changes) and br.changes["beyond_noise"].astype(bool).any())
  return hits / reps


def table(reps: int = 400, seed: int = 0, ns: Sequence[int] = (8, 16, 32, 64),
          progress: Callable[[str], None] | None = None) -> list[Row]:
  """Every interval the harness prints, measured (see the module docstring)."""
  rng = np.random.default_rng(seed)
  rows: list[Row] = []
  say = progress or (lambda _: None)
  est_steps = "median over reruns of the study's steps to result (Shallue)"
  for shape in STEP_SHAPES:
    for n in ns:
      cov, sides = steps_to_result_coverage(shape, n, reps, rng)
      rows.append(Row("steps to result per batch size", est_steps, f"{shape.name}, n={n}",
                      sides, ">= 90% (upper)", cov, 2 * reps))
      say(rows[-1].line())
  est_k = "median over reruns of the best of k trials"
  for shape in SCORE_SHAPES:
    for n in ns:
      for k in sorted({1, max(1, n // 4), n}):
        cov, sides = best_of_k_coverage(shape, n, k, reps, rng)
        nominal = "90% (two-sided)" if sides == bounds.TWO_SIDED else ">= 90% (upper)"
        rows.append(Row("best-of-k curve", est_k, f"{shape.name}, n={n}, k={k}", sides,
                        nominal, cov, reps))
        say(rows[-1].line())
  for shape in SCORE_SHAPES:
    for n in ns:
      cov, sides = ranking_coverage(shape, n, reps, rng)
      rows.append(Row("ranking score (best val per optimizer)",
                      "median over reruns of the study's best validation score",
                      f"{shape.name}, n={n}", sides, ">= 90% (upper)", cov, 2 * reps))
      say(rows[-1].line())
      fpr = inclusion_false_positive_rate(shape, n, reps, rng)
      rows.append(Row("inclusion violation beyond noise (false-positive rate)",
                      "P(verdict 'beyond noise' | both optimizers draw from one distribution)",
                      f"{shape.name}, n={n}", "test", "<= 10%", fpr, reps))
      say(rows[-1].line())
  small = max(reps // 4, 1)  # the null tests below simulate whole experiments: fewer
  nulls = (  # (interval, estimand, setting, false-positive rate of n, verdicts per rep)
      ("rank change across protocols beyond noise (false-positive rate)",
       "P(any change reported | 4 optimizers x 2 protocols, one distribution)",
       "4 optimizers x 2 protocols x n={n} trials",
       lambda n: protocol_change_false_positive_rate(SCORE_SHAPES[0], n, small, rng), 1),
      ("rank 'moved' between steps and seconds (false-positive rate)",
       "P(a submission called moved | equal cost per step, 10% pace noise)",
       "4 submissions x n={n} trials", lambda n: clock_move_false_positive_rate(n, small, rng),
       4),
      ("rank change across budgets beyond noise (false-positive rate)",
       "P(a swap reported | both optimizers' curves from one distribution)",
       "2 optimizers x n={n} trials, 10 budgets",
       lambda n: budget_swap_false_positive_rate(n, small, rng), 1))
  for interval, estimand, setting, fpr_of, per_rep in nulls:
    for n in ns[:2]:
      rows.append(Row(interval, estimand, setting.format(n=n), "test", "<= 10%", fpr_of(n),
                      per_rep * small))
      say(rows[-1].line())
  return rows


HEADER = ["| interval | setting | sides | nominal | measured | intervals checked |",
          "|---|---|---|---|---|---|"]


def main(argv: Sequence[str]) -> int:
  from absl import flags
  f = flags.FLAGS
  if len(argv) > 1:
    print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
    return 1
  print("\n".join(HEADER), flush=True)
  table(reps=f.reps, seed=f.seed, progress=lambda line: print(line, flush=True))
  return 0


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_integer("reps", 400, "Simulated studies per row (coverage SE ~ 1.5% at 400).")
  flags.DEFINE_integer("seed", 0, "Seed of the simulation.")
  app.run(main)
