"""Samplers: how the points of a study are drawn from a search space.

  quasi_random  scrambled Halton (scipy.stats.qmc), the playbook's choice for exploration.
  random        independent uniform draws (numpy Generator), the classic baseline.
  grid          Cartesian product, log-spaced along log parameters (DeepOBS baselines).
  bayesian      optuna's TPE after a quasi-random warm start (the playbook's exploitation
                phase). Adaptive, hence *sequential*: see bayesian_points.

quasi_random and random work in the unit cube [0, 1]^d; search_space maps each column to
its parameter. Both have the prefix property: the first n points of a study do not depend
on how many points are drawn in total, so a study extended from 20 to 40 trials keeps its
first 20.
"""
from __future__ import annotations

import itertools
import json
import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from protocols import search_space as ss
from protocols.search_space import ProtocolError

SAMPLERS = ("quasi_random", "random", "grid", "bayesian")
SAMPLER_FIELDS = {
    "quasi_random": set(),
    "random": set(),
    "grid": {"num_per_dim", "values"},
    "bayesian": {"num_startup"},
}
DEFAULT_NUM_STARTUP = 10

History = Sequence[tuple[Mapping[str, Any], "float | None"]]


# --- Unit-cube samplers. -----------------------------------------------------------------

def unit_cube(name: str, dim: int, num: int, seed: int) -> np.ndarray:
  """The first `num` rows of sampler `name`'s sequence in [0, 1]^dim, shape (num, dim)."""
  if num < 0:
    raise ProtocolError(f"number of points must be >= 0, got {num}")
  if dim == 0:
    return np.zeros((num, 0))
  rng = np.random.default_rng(seed)
  if name == "quasi_random":
    return _halton(dim, rng).random(num)
  if name == "random":
    return rng.random((num, dim))
  raise ProtocolError(f"sampler {name!r} has no unit cube; "
                      "unit-cube samplers: quasi_random, random")


def _halton(dim: int, rng: np.random.Generator) -> qmc.Halton:
  # A Generator gives the same scrambling through `rng` (scipy >= 1.15) and `seed`.
  try:
    return qmc.Halton(dim, scramble=True, rng=rng)
  except TypeError:
    return qmc.Halton(dim, scramble=True, seed=rng)


def unit_points(space: Mapping[str, Any], name: str, num: int, seed: int
                ) -> list[dict[str, Any]]:
  """The first `num` points of a unit-cube sampler."""
  cube = unit_cube(name, len(ss.dimensions(space)), num, seed)
  return [ss.point_from_unit(space, row) for row in cube]


# --- Grid. -------------------------------------------------------------------------------

def grid_axes(space: Mapping[str, Any], sampler: Mapping[str, Any]
              ) -> list[tuple[str, list[Any]]]:
  """The values along each non-fixed parameter: sampler.values[name] if given, a choice's
  own values, else sampler.num_per_dim points evenly spaced on the parameter's scale."""
  explicit = dict(sampler.get("values") or {})
  for name in explicit:
    if name not in space or space[name]["kind"] == "fixed":
      raise ProtocolError(f"sampler.values.{name}: no such non-fixed parameter in the search space")
  axes = []
  for name in ss.dimensions(space):
    spec = space[name]
    if name in explicit:
      values = _explicit_axis(name, spec, explicit[name])
    elif spec["kind"] == "choice":
      values = list(spec["values"])
    else:
      values = _spaced_axis(name, spec, sampler.get("num_per_dim"))
    axes.append((name, values))
  return axes


def _explicit_axis(name: str, spec: Mapping[str, Any], values: Any) -> list[Any]:
  values = list(values) if isinstance(values, (list, tuple)) else [values]
  if not values:
    raise ProtocolError(f"sampler.values.{name} is empty")
  for v in values:
    if not ss.contains(spec, v):
      raise ProtocolError(f"sampler.values.{name}: {v!r} lies outside the parameter's range")
  return values


def _spaced_axis(name: str, spec: Mapping[str, Any], num: Any) -> list[Any]:
  if num is None:
    raise ProtocolError(f"grid sampler needs sampler.num_per_dim or sampler.values.{name}")
  if isinstance(num, bool) or not isinstance(num, int) or num < 1:
    raise ProtocolError(f"sampler.num_per_dim must be an integer >= 1, got {num!r}")
  us = [0.5] if num == 1 else [i / (num - 1) for i in range(num)]
  values = [ss.to_value(spec, u) for u in us]
  if spec["kind"] != "int":
    values = [float(f"{v:.12g}") for v in values]  # 1e-05, not 1.0000000000000004e-05
  return list(dict.fromkeys(values))


def grid_points(space: Mapping[str, Any], sampler: Mapping[str, Any]) -> list[dict[str, Any]]:
  """Every grid point once, first parameter (sorted by name) varying slowest. Points that
  differ only in an inactive conditional parameter are merged."""
  axes = grid_axes(space, sampler)
  points, seen = [], set()
  for combo in itertools.product(*(values for _, values in axes)):
    coord = dict(zip((name for name, _ in axes), combo))
    point = ss.assemble(space, lambda name, spec: coord[name])
    key = json.dumps(point, sort_keys=True)
    if key not in seen:
      seen.add(key)
      points.append(point)
  return points


# --- Bayesian (optuna TPE). --------------------------------------------------------------

def bayesian_points(space: Mapping[str, Any], sampler: Mapping[str, Any], seed: int,
                    num: int, history: History = ()) -> list[dict[str, Any]]:
  """The first `num` points of a sequential Bayesian study.

  Points 0..num_startup-1 are the quasi-random points (seeded like a quasi_random study).
  Later point k is the point that was run, history[k][0], when the history has it;
  beyond the history, points are TPE proposals given the whole history, the not yet
  finished warm-start points and earlier proposals counted as pending (constant liar).
  Proposals beyond the history are provisional: a longer history changes them. The result
  is deterministic given (space, seed, num, history) and has the prefix property for a
  fixed history. Run the study in order and feed each result back.
  """
  history = list(history)
  num_startup = int(sampler.get("num_startup", DEFAULT_NUM_STARTUP))
  startup = unit_points(space, "quasi_random", min(num, num_startup), seed)
  points = list(startup)
  points += [dict(p) for p, _ in history[num_startup:num]]
  if len(points) >= num:
    return points[:num]
  study = build_study(space, seed, history)
  for point in unit_points(space, "quasi_random", num_startup, seed)[len(history):]:
    _add_trial(study, space, point, value=None, running=True)
  while len(points) < num:
    points.append(_ask(study, space))
  return points


def build_study(space: Mapping[str, Any], seed: int, history: History = ()) -> Any:
  """A fresh optuna study told the finished trials of `history`: a value is COMPLETE
  (lower is better), None or a non-finite value (diverged / failed) is FAIL."""
  import optuna  # pylint: disable=g-import-not-at-top  (slow import, only this sampler)
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  tpe = optuna.samplers.TPESampler(seed=seed % 2**32, n_startup_trials=0, constant_liar=True)
  study = optuna.create_study(direction="minimize", sampler=tpe)
  for i, (point, value) in enumerate(history):
    try:
      _add_trial(study, space, point, value=value, running=False)
    except ProtocolError as e:
      raise ProtocolError(f"history[{i}]: {e}") from None
  return study


def _add_trial(study: Any, space: Mapping[str, Any], point: Mapping[str, Any],
               value: float | None, running: bool) -> None:
  import optuna  # pylint: disable=g-import-not-at-top
  searched = ss.searched_values(space, point)
  params = {n: _to_optuna(n, space[n], v) for n, v in searched.items()}
  dists = {n: _distribution(space[n]) for n in searched}
  state = optuna.trial.TrialState
  if running:
    kwargs = {"state": state.RUNNING}
  elif value is None or not math.isfinite(float(value)):
    kwargs = {"state": state.FAIL}
  else:
    kwargs = {"state": state.COMPLETE, "value": float(value)}
  study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, **kwargs))


def _ask(study: Any, space: Mapping[str, Any]) -> dict[str, Any]:
  trial = study.ask()
  return ss.assemble(space, lambda name, spec: _suggest(trial, name, spec))


def _distribution(spec: Mapping[str, Any]) -> Any:
  from optuna import distributions as d  # pylint: disable=g-import-not-at-top
  kind = spec["kind"]
  if kind == "choice":
    return d.CategoricalDistribution(list(spec["values"]))
  if kind == "int":
    return d.IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
  low, high = float(spec["low"]), float(spec["high"])
  if kind == "log1m":  # optuna sees 1 - x, log-uniform
    return d.FloatDistribution(1.0 - high, 1.0 - low, log=True)
  return d.FloatDistribution(low, high, log=kind == "log")


def _suggest(trial: Any, name: str, spec: Mapping[str, Any]) -> Any:
  kind = spec["kind"]
  dist = _distribution(spec)
  if kind == "choice":
    return trial.suggest_categorical(name, dist.choices)
  if kind == "int":
    return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
  x = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
  if kind == "log1m":
    x = 1.0 - x
  return min(max(x, float(spec["low"])), float(spec["high"]))


def _to_optuna(name: str, spec: Mapping[str, Any], value: Any) -> Any:
  """A point's value in optuna's coordinates, checked against the space."""
  if spec["kind"] == "choice":
    if value not in list(spec["values"]):
      raise ProtocolError(f"{name}={value!r} is not among the choice's values")
    return value
  if not isinstance(value, (int, float)) or isinstance(value, bool):
    raise ProtocolError(f"{name}={value!r} is not a number")
  low, high = float(spec["low"]), float(spec["high"])
  slack = 1e-12 * (high - low)
  if not low - 1e-9 * abs(low) - slack <= value <= high + 1e-9 * abs(high) + slack:
    raise ProtocolError(f"{name}={value!r} lies outside [{low}, {high}]")
  if spec["kind"] == "int":
    return int(round(value))
  dist = _distribution(spec)
  x = 1.0 - value if spec["kind"] == "log1m" else float(value)
  return min(max(x, dist.low), dist.high)
