"""Protocols as data: validation, hashing, presets."""
from __future__ import annotations

import copy
import re

import ml_collections
import pytest

import protocols as P
from protocols import presets
from protocols import search_space as ss


def _space():
  return {
      "optimizer": P.choice(["sgd", "momentum", "adam"]),
      "learning_rate": P.log(1e-4, 1.0),
      "momentum": P.log1m(0.5, 0.999, condition={"optimizer": ["momentum"]}),
      "beta1": P.log1m(0.5, 0.999, condition={"optimizer": ["adam"]}),
      "schedule": P.fixed("linear_decay"),
      "warmup_steps": P.integer(0, 100),
  }


def _good(**overrides):
  return P.make("test", _space(), num_trials=10, **overrides)


def test_a_good_protocol_validates_and_prints():
  p = _good()
  P.validate(p)
  text = str(p)
  for field in ("search_space", "sampler", "budget", "objective", "seeds", "source"):
    assert field in text


def _set(path, value):
  """A mutation of the good protocol: set (or with value=KeyError, delete) a dotted path."""
  def mutate(p):
    *parents, last = path.split(".")
    node = p
    for key in parents:
      node = node[key]
    if value is KeyError:
      del node[last]
    else:
      node[last] = value
  return mutate


# (mutation, text the one-line message must contain)
MALFORMED = [
    (_set("sampler.name", "sobol"), "unknown sampler 'sobol'"),
    (_set("search_space.learning_rate.kind", "loguniform"),
     "learning_rate: unknown kind 'loguniform'"),
    (_set("search_space.learning_rate.low", 2.0), "learning_rate: low 2.0 > high 1.0"),
    (_set("search_space.learning_rate.low", 0.0), "learning_rate: log range needs 0 < low"),
    (_set("search_space.learning_rate", P.log(-1.0, 1.0)),
     "learning_rate: log range needs 0 < low"),
    (_set("search_space.momentum.high", 1.0), "momentum: log1m range needs high < 1"),
    (_set("search_space.optimizer", P.choice([])), "optimizer: choice has no values"),
    (_set("search_space.beta1.condition", {"optimzer": ["adam"]}),
     "refers to missing parameter 'optimzer'"),
    (_set("search_space.optimizer", P.choice(["sgd", "adma"])), "unknown optimizer 'adma'"),
    (_set("search_space.lerning_rate", P.log(1e-3, 1.0)), "no optimizer in the space"),
    (_set("search_space.trust_coefficient", P.log(1e-3, 1.0)), "'trust_coefficient'"),
    (_set("search_space.momentum.condition", KeyError),
     "momentum applies to optimizer 'sgd', which does not take it"),
    (_set("budget.num_trials", 0), "budget.num_trials must be an integer >= 1"),
    (_set("objective.name", "final_loss"), "unknown objective 'final_loss'"),
    (_set("search_space.learning_rate.hgih", 1.0), "learning_rate: unknown field 'hgih'"),
    (_set("search_space.learning_rate.reparam", "elr"), "unknown reparam 'elr'"),
    (_set("search_space.warmup_steps.low", 0.5), "warmup_steps.low must be an integer"),
    (_set("search_space.warmup_steps.log", True), "log-spaced int range needs low >= 1"),
    (_set("search_space.schedule.value", "step"), "unknown schedule 'step'"),
    (_set("search_space.beta1.condition", {"optimizer": ["nadam"]}),
     "allows optimizer='nadam', which 'optimizer' never takes"),
    (_set("search_space.beta1.condition", {"learning_rate": [0.1]}),
     "'learning_rate' must be a choice or fixed parameter"),
    (_set("budget.num_studies", KeyError), "budget has no field 'num_studies'"),
    (_set("budget.num_trails", 10), "budget: unknown field 'num_trails'"),
    (_set("sampler.num_startup", 5), "unknown field 'num_startup' for sampler 'quasi_random'"),
    (_set("search_space", {}), "search_space is empty"),
]


@pytest.mark.parametrize("mutate,expected", MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_protocols_fail_in_one_line_naming_the_problem(mutate, expected):
  p = P.as_plain(_good())
  mutate(p)
  with pytest.raises(P.ProtocolError) as err:
    P.validate(p)
  message = str(err.value)
  assert "\n" not in message
  assert expected in message, message


def test_malformed_configdicts_fail_the_same_way():
  p = _good()
  p.sampler.name = "hyperband"
  with pytest.raises(P.ProtocolError, match="unknown sampler 'hyperband'"):
    P.sample_points(p, 0, 5)


def test_reparam_inputs_and_clashes_are_checked():
  space = {"optimizer": P.choice(["sgd", "momentum"]),
           "momentum": P.log1m(0.5, 0.99, condition={"optimizer": ["momentum"]}),
           "elr": P.log(1e-2, 1.0, reparam="effective_learning_rate")}
  with pytest.raises(P.ProtocolError, match="elr \\(optimizer 'sgd'\\): reparam "
                     "'effective_learning_rate' needs 'momentum'"):
    P.validate(P.make("t", space, num_trials=1))
  space["elr"]["condition"] = {"optimizer": ["momentum"]}
  space["learning_rate"] = P.log(1e-3, 1.0)
  with pytest.raises(P.ProtocolError, match="both set 'learning_rate'"):
    P.validate(P.make("t", space, num_trials=1))
  space["learning_rate"]["condition"] = {"optimizer": ["sgd"]}  # disjoint: fine
  P.validate(P.make("t", space, num_trials=1))
  points = P.sample_points(P.make("t", space, num_trials=20), 0, 20)
  assert all("learning_rate" in q and "elr" not in q for q in points)


def test_condition_cycles_are_reported():
  space = {"a": P.choice(["x"], condition={"b": ["y"]}),
           "b": P.choice(["y"], condition={"a": ["x"]})}
  with pytest.raises(P.ProtocolError, match="conditions form a cycle"):
    ss.validate_space(space)


# --- Hashing. ----------------------------------------------------------------------------

def test_hash_is_independent_of_key_order_and_container():
  p = P.as_plain(_good())
  reordered = {k: p[k] for k in reversed(list(p))}
  reordered["search_space"] = {k: dict(reversed(list(v.items())))
                               for k, v in reversed(list(p["search_space"].items()))}
  assert P.protocol_hash(reordered) == P.protocol_hash(p) == P.protocol_hash(_good())
  assert P.protocol_hash(ml_collections.FrozenConfigDict(_good())) == P.protocol_hash(p)
  assert re.fullmatch(r"[0-9a-f]{12}", P.protocol_hash(p))


def test_hash_is_stable_across_runs():
  p = {"name": "golden", "search_space": {"learning_rate": P.log(1e-3, 1.0)},
       "sampler": {"name": "quasi_random"}, "budget": {"num_trials": 5}}
  assert P.protocol_hash(p) == "ab288d333396"  # canonical JSON; change only on purpose


@pytest.mark.parametrize("path,value", [
    ("search_space.learning_rate.high", 2.0), ("name", "other"), ("budget.num_trials", 11),
    ("seeds.study_seed", 1), ("sampler.name", "random"), ("source", "x"),
    ("search_space.beta1.condition", {"optimizer": ["sgd", "adam"]})])
def test_hash_changes_with_any_content(path, value):
  p = P.as_plain(_good())
  q = copy.deepcopy(p)
  _set(path, value)(q)
  assert P.protocol_hash(q) != P.protocol_hash(p)


def test_points_depend_on_space_and_sampler_only():
  a, b = _good(), _good()
  b.name, b.budget.num_trials, b.objective.name = "renamed", 99, "steps_to_goal"
  assert P.sampling_hash(a) == P.sampling_hash(b)
  assert P.sample_points(a, 0, 10) == P.sample_points(b, 0, 10)


# --- Protocol fields. ---------------------------------------------------------------------

def test_budget_placeholders_take_command_line_style_overrides():
  p = _good()
  assert p.budget.train_steps is None
  p.budget.train_steps = 1000
  p.budget.eval_every = 50
  P.validate(p)
  with pytest.raises(P.ProtocolError, match="budget.eval_every must be an integer >= 1 or None"):
    P.validate(P.make("t", _space(), num_trials=1, eval_every=0))


def test_study_seeds_follow_num_studies():
  p = presets.get("algoperf_external", study_seed=10)
  assert P.study_seeds(p) == [10, 11, 12, 13, 14]


# --- Presets. -------------------------------------------------------------------------------

PRESET_CASES = [
    ("shallue", {}), ("shallue", {"optimizer": "sgd"}),
    ("shallue", {"optimizer": "momentum", "effective_learning_rate": True}),
    ("deepobs_baseline", {"optimizer": "adam"}), ("deepobs_baseline", {"optimizer": "sgd"}),
    ("algoperf_external", {"train_steps": 2000}), ("algoperf_external", {"optimizer": "adamw"}),
] + [(f"choi_{level}", {"optimizer": opt}) for level in presets.CHOI_LEVELS
     for opt in presets.CHOI_OPTIMIZERS]


@pytest.mark.parametrize("name,kwargs", PRESET_CASES)
def test_every_preset_validates_and_samples_num_trials(name, kwargs):
  p = presets.get(name, **kwargs)
  P.validate(p)
  assert p.source and name in presets.PRESETS and presets.PRESETS[name].__doc__
  n = p.budget.num_trials
  points = P.sample_points(p, p.seeds.study_seed, n)
  assert len(points) == n
  assert all(q["optimizer"] == p.search_space.optimizer.value for q in points)


def test_preset_overrides_and_errors():
  p = presets.get("choi_all", optimizer="nadam", num_trials=10, train_steps=500,
                  eval_every=50, study_seed=3)
  assert (p.budget.num_trials, p.budget.train_steps, p.budget.eval_every,
          p.seeds.study_seed) == (10, 500, 50, 3)
  assert presets.get("algoperf_external", train_steps=2000).search_space.warmup_steps.value == 100
  with pytest.raises(P.ProtocolError, match="unknown protocol preset 'choi'"):
    presets.get("choi")
  with pytest.raises(P.ProtocolError, match="takes no argument 'num_trails'"):
    presets.get("shallue", num_trails=10)
  with pytest.raises(P.ProtocolError, match="optimizer must be one of"):
    presets.get("choi_lr", optimizer="lamb")


def _schedule_equivalent(value, spec, space):
  """A constant schedule is linear decay with decay_factor 1 (Choi's 'all' level)."""
  return value == "constant" and spec["value"] == "linear_decay" and \
      ss.contains(space["decay_factor"], 1.0)


@pytest.mark.parametrize("optimizer", presets.CHOI_OPTIMIZERS)
def test_choi_levels_are_nested(optimizer):
  levels = [P.as_plain(presets.choi(optimizer, level))["search_space"]
            for level in presets.CHOI_LEVELS]
  for small, large in zip(levels, levels[1:]):
    assert set(small) <= set(large)
    for name, spec in small.items():
      big = large[name]
      if spec["kind"] == "fixed":
        assert ss.contains(big, spec["value"]) or _schedule_equivalent(
            spec["value"], big, large), (name, spec, big)
      else:
        assert big["kind"] == spec["kind"], name
        assert big["low"] <= spec["low"] and spec["high"] <= big["high"], name
  assert len(levels[2]) > len(levels[1]) >= len(levels[0])


def test_choi_all_searches_the_adam_hyperparameters():
  space = presets.choi("adam", "all").search_space
  assert space.epsilon.kind == "log" and (space.epsilon.low, space.epsilon.high) == (1e-10, 1e10)
  assert space.beta1.kind == space.beta2.kind == "log1m"
  assert space.schedule.value == "linear_decay"


def test_deepobs_and_algoperf_shapes():
  d = presets.get("deepobs_baseline", optimizer="momentum")
  assert d.sampler.name == "grid" and d.budget.num_trials == 36 == P.grid_size(d)
  assert d.budget.rerun_best_seeds == 9 and d.search_space.momentum.value == 0.99
  a = presets.get("algoperf_external")
  assert (a.budget.num_studies, a.budget.num_trials, a.objective.name) == (5, 5, "steps_to_goal")
