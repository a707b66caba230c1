"""Samplers and search-space mappings: coverage, edges, conditions, determinism, Bayesian."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import qmc

import protocols as P
from protocols import samplers
from protocols import search_space as ss

OPTIMIZER_SPACE = {
    "optimizer": P.choice(["sgd", "momentum", "adam"]),
    "learning_rate": P.log(1e-4, 1.0),
    "momentum": P.log1m(0.5, 0.999, condition={"optimizer": ["momentum"]}),
    "beta1": P.log1m(0.5, 0.999, condition={"optimizer": ["adam"]}),
}


def _protocol(sampler="quasi_random", num_trials=40, space=None, **fields):
  return P.make("test", space or OPTIMIZER_SPACE, sampler=sampler, num_trials=num_trials,
                **fields)


def unit_sample(protocol, study_seed, num):
  """The raw unit-cube rows behind P.sample_points (columns: search_space.dimensions);
  the bayesian sampler's rows are its quasi-random warm start."""
  p = P.as_plain(protocol)
  name = p["sampler"]["name"]
  cube = "quasi_random" if name == "bayesian" else name
  dim = len(ss.dimensions(p["search_space"]))
  return samplers.unit_cube(cube, dim, num, P.sampler_seed(p, study_seed))


# --- Coverage of the unit cube. ----------------------------------------------------------

def test_quasi_random_covers_the_cube_better_than_random():
  halton = [qmc.discrepancy(samplers.unit_cube("quasi_random", 4, 64, s)) for s in range(5)]
  uniform = [qmc.discrepancy(samplers.unit_cube("random", 4, 64, s)) for s in range(5)]
  assert max(halton) < min(uniform) / 3


def test_unit_sample_is_the_cube_behind_the_points():
  space = {"learning_rate": P.linear(0.0, 1.0), "momentum": P.linear(0.0, 1.0)}
  p = _protocol(space=space, num_trials=16)
  cube = unit_sample(p, 3, 16)
  points = P.sample_points(p, 3, 16)
  assert cube.shape == (16, 2)
  np.testing.assert_allclose(cube[:, 0], [q["learning_rate"] for q in points])
  np.testing.assert_allclose(cube[:, 1], [q["momentum"] for q in points])


# --- Mappings. ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    P.linear(-2.0, 3.0), P.log(1e-5, 1e2), P.log1m(0.0, 0.999), P.log1m(0.9, 0.9999),
    P.log(1e-10, 1e10)])
def test_continuous_edges_are_exact_and_mapping_is_monotone(spec):
  assert ss.to_value(spec, 0.0) == pytest.approx(spec["low"], rel=1e-12, abs=0)
  assert ss.to_value(spec, 1.0) == pytest.approx(spec["high"], rel=1e-12, abs=0)
  values = [ss.to_value(spec, u) for u in np.linspace(0, 1, 1001)]
  assert np.all(np.diff(values) > 0)
  assert min(values) >= spec["low"] and max(values) <= spec["high"]


def test_log_scales_put_the_midpoint_at_the_geometric_mean():
  assert ss.to_value(P.log(1e-4, 1.0), 0.5) == pytest.approx(1e-2)
  x = ss.to_value(P.log1m(0.9, 0.999), 0.5)
  assert 1 - x == pytest.approx(math.sqrt(0.1 * 0.001))


@pytest.mark.parametrize("spec", [P.integer(2, 9), P.integer(1, 1000, log=True)])
def test_int_bounds_are_inclusive(spec):
  values = [ss.to_value(spec, u) for u in np.linspace(0, 1, 5001)]
  assert all(isinstance(v, int) for v in values)
  assert min(values) == spec["low"] and max(values) == spec["high"]
  assert np.all(np.diff(values) >= 0)
  if not spec.get("log"):
    assert sorted(set(values)) == list(range(2, 10))


def test_choice_and_fixed():
  spec = P.choice(["a", "b", "c"])
  assert [ss.to_value(spec, u) for u in (0.0, 0.34, 0.67, 1.0)] == ["a", "b", "c", "c"]
  assert ss.to_value(P.fixed("linear_decay"), 0.3) == "linear_decay"


# --- Conditions and reparameterisations. ---------------------------------------------------

@pytest.mark.parametrize("sampler", ["quasi_random", "random"])
def test_conditional_parameters_present_only_where_they_apply(sampler):
  points = P.sample_points(_protocol(sampler), 0, 60)
  assert {q["optimizer"] for q in points} == {"sgd", "momentum", "adam"}
  for q in points:
    assert ("momentum" in q) == (q["optimizer"] == "momentum")
    assert ("beta1" in q) == (q["optimizer"] == "adam")
    assert None not in q.values()


def test_effective_learning_rate_reparam_sets_learning_rate():
  space = {
      "optimizer": P.fixed("momentum"),
      "momentum": P.log1m(0.5, 0.999),
      "effective_learning_rate": P.log(1e-2, 10.0, reparam="effective_learning_rate"),
  }
  p = _protocol(space=space, num_trials=30)
  P.validate(p)
  cube = unit_sample(p, 0, 30)  # columns: effective_learning_rate, momentum, by name
  for row, q in zip(cube, P.sample_points(p, 0, 30)):
    assert set(q) == {"optimizer", "momentum", "learning_rate"}
    elr = ss.to_value(space["effective_learning_rate"], row[0])
    assert q["momentum"] == ss.to_value(space["momentum"], row[1])
    assert q["learning_rate"] == pytest.approx(elr * (1 - q["momentum"]), rel=1e-12)


def test_reparams_are_a_registry():
  name = "test_half_learning_rate"
  P.register_reparam(name, P.Reparam(
      output="learning_rate", uses=(), forward=lambda x, p: x / 2,
      inverse=lambda lr, p: 2 * lr, doc="test"))
  try:
    space = {"optimizer": P.fixed("sgd"), "doubled": P.log(1e-2, 1.0, reparam=name)}
    q = P.sample_points(_protocol(space=space, num_trials=1), 0, 1)[0]
    assert set(q) == {"optimizer", "learning_rate"} and q["learning_rate"] <= 0.5
    with pytest.raises(P.ProtocolError, match="already registered"):
      P.register_reparam(name, P.REPARAMS[name])
  finally:
    del P.REPARAMS[name]


# --- Determinism and the prefix property. --------------------------------------------------

@pytest.mark.parametrize("sampler", ["quasi_random", "random"])
def test_same_seed_same_points_other_seed_other_points(sampler):
  p = _protocol(sampler)
  assert P.sample_points(p, 7, 20) == P.sample_points(p, 7, 20)
  a, b = P.sample_points(p, 7, 20), P.sample_points(p, 8, 20)
  assert all(x["learning_rate"] != y["learning_rate"] for x, y in zip(a, b))


@pytest.mark.parametrize("sampler", ["quasi_random", "random"])
def test_prefix_property_when_a_study_is_extended(sampler):
  small, large = _protocol(sampler, num_trials=20), _protocol(sampler, num_trials=40)
  assert P.sample_points(large, 1, 40)[:20] == P.sample_points(small, 1, 20)


def test_different_protocols_get_different_points():
  other = dict(OPTIMIZER_SPACE, learning_rate=P.log(1e-4, 1.0 + 1e-9))
  a = P.sample_points(_protocol(), 0, 10)
  b = P.sample_points(_protocol(space=other), 0, 10)
  assert all(x["learning_rate"] != pytest.approx(y["learning_rate"], rel=1e-3)
             for x, y in zip(a, b))


def test_points_are_plain_python():
  for q in P.sample_points(_protocol(), 0, 10):
    assert all(type(v) in (str, float, int) for v in q.values())


# --- Grid. ---------------------------------------------------------------------------------

def test_deepobs_grid_is_36_log_spaced_learning_rates():
  p = P.presets.get("deepobs_baseline", optimizer="momentum")
  points = P.sample_points(p, 0, 36)
  lrs = [q["learning_rate"] for q in points]
  np.testing.assert_allclose(lrs, 10.0 ** np.linspace(-5, 2, 36), rtol=1e-11)
  assert lrs[0] == 1e-5 and lrs[-1] == 100.0
  assert all(q["momentum"] == 0.99 and q["schedule"] == "constant" for q in points)
  assert P.sample_points(p, 0, 36) == P.sample_points(p, 1, 36)  # a grid has no randomness


def test_grid_product_respects_conditions_and_explicit_values():
  space = {
      "optimizer": P.choice(["sgd", "momentum"]),
      "learning_rate": P.log(1e-3, 1e-1),
      "momentum": P.log1m(0.5, 0.99, condition={"optimizer": ["momentum"]}),
  }
  p = _protocol("grid", space=space, num_trials=9, num_per_dim=3,
                values={"momentum": [0.9, 0.99]})
  points = P.sample_points(p, 0, 9)
  assert len(points) == 9 == P.grid_size(p)  # 3 sgd + 3 x 2 momentum, sgd duplicates merged
  assert [q["learning_rate"] for q in points if q["optimizer"] == "sgd"] == [1e-3, 1e-2, 1e-1]
  assert points[0]["learning_rate"] == points[2]["learning_rate"] == 1e-3  # sorted names:
  assert [q["optimizer"] for q in points[:3]] == ["sgd", "momentum", "momentum"]  # lr slowest
  assert sorted({q.get("momentum") for q in points if "momentum" in q}) == [0.9, 0.99]
  assert len({tuple(sorted(q.items())) for q in points}) == 9


def test_grid_asks_for_its_size():
  space = {"optimizer": P.fixed("sgd"), "learning_rate": P.log(1e-3, 1e-1)}
  with pytest.raises(P.ProtocolError, match="grid has 5 points but budget.num_trials is 6"):
    P.validate(_protocol("grid", space=space, num_trials=6, num_per_dim=5))
  with pytest.raises(P.ProtocolError, match="grid has 5 points, 6 were asked"):
    P.sample_points(_protocol("grid", space=space, num_trials=5, num_per_dim=5), 0, 6)
  with pytest.raises(P.ProtocolError, match="num_per_dim or sampler.values.learning_rate"):
    P.validate(_protocol("grid", space=space, num_trials=5))


# --- Bayesian. -----------------------------------------------------------------------------

def _quadratic(point):
  """Minimum at learning_rate = 1e-2 whatever the other hyperparameters."""
  return (math.log10(point["learning_rate"]) + 2.0) ** 2


def _run_bayesian(p, num, fail_at=()):
  history = []
  for k in range(num):
    point = P.sample_points(p, 0, k + 1, history)[k]
    history.append((point, None if k in fail_at else _quadratic(point)))
  return history


def test_bayesian_finds_the_minimum_of_a_cheap_objective_and_is_deterministic():
  p = _protocol("bayesian", num_trials=15, num_startup=5)
  history = _run_bayesian(p, 15, fail_at={2})
  assert [q for q, _ in history[:5]] == P.sample_points(_protocol(
      "bayesian", num_trials=5, num_startup=5), 0, 5)  # warm start: quasi-random
  best = min(v for _, v in history if v is not None)
  assert best < 0.05  # within ~0.2 decades of 1e-2
  assert sum(v < 0.25 for _, v in history[5:] if v is not None) >= 3  # exploitation
  assert _run_bayesian(p, 15, fail_at={2}) == history


def test_bayesian_points_depend_on_history_and_keep_the_prefix():
  p = _protocol("bayesian", num_trials=12, num_startup=4)
  history = _run_bayesian(p, 8)
  a = P.sample_points(p, 0, 12, history)
  assert a == P.sample_points(p, 0, 12, history)
  assert a[:8] == [q for q, _ in history]
  assert P.sample_points(p, 0, 10, history) == a[:10]
  changed = [(q, 10.0 - v) for q, v in history]  # another history, other proposals
  assert P.sample_points(p, 0, 12, changed)[8:] != a[8:]
  assert P.sample_points(p, 0, 12, history)[8:] != P.sample_points(p, 1, 12, history)[8:]


def test_failed_trials_are_told_as_failed():
  import optuna
  p = _protocol("bayesian", num_trials=6, num_startup=3)
  points = P.sample_points(p, 0, 3)
  history = [(points[0], 0.5), (points[1], None), (points[2], float("nan"))]
  study = samplers.build_study(OPTIMIZER_SPACE, 0, history)
  states = [t.state for t in study.trials]
  assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                    optuna.trial.TrialState.FAIL]
  assert study.trials[0].value == 0.5 and study.trials[1].value is None
  assert len(P.sample_points(p, 0, 6, history)) == 6


def test_bayesian_history_is_read_through_reparams_and_checked():
  space = {
      "optimizer": P.fixed("momentum"),
      "momentum": P.log1m(0.5, 0.999),
      "effective_learning_rate": P.log(1e-2, 10.0, reparam="effective_learning_rate"),
  }
  p = _protocol("bayesian", space=space, num_trials=6, num_startup=3)
  points = P.sample_points(p, 0, 3)
  study = samplers.build_study(space, 0, [(q, 1.0) for q in points])
  for q, trial in zip(points, study.trials):
    assert trial.params["effective_learning_rate"] == pytest.approx(
        q["learning_rate"] / (1 - q["momentum"]))
    assert trial.params["momentum"] == pytest.approx(1 - q["momentum"])  # optuna sees 1 - x
  assert all(set(q) == {"optimizer", "momentum", "learning_rate"}
             for q in P.sample_points(p, 0, 6, [(q, 1.0) for q in points]))
  outside = dict(points[0], momentum=0.1)
  with pytest.raises(P.ProtocolError, match=r"history\[0\]: .* lies outside"):
    P.sample_points(p, 0, 6, [(outside, 1.0)] + [(q, 1.0) for q in points[1:]])
