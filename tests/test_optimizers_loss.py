"""Rules that read the loss (presets.LOSS_OPTIMIZERS: sophia, momo, momo_adam; and
presets.MORE_LOSS_OPTIMIZERS: momentum_plateau, polyak_sgd; issue 21):
the train step passes optax's extra arguments `value` and `obj_fn`. Each against optax's
own transformation, a pack equal to solo runs, range checks, Choi spaces, bench.train on
mnist1d_mlp (validation loss falls), and Sophia's reverse-over-reverse Hessian product
through the CPU convolution's custom VJP (the CNN trains)."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

from bench import optimizer_rules, optimizers
from conftest import ROOT
from optimizer_harness import (CENTRE, CURV, PARAMS, STEPS, check_bad_value,
                               check_choi_levels, check_pack_equals_solo, check_registered,
                               check_trained, close, pack_update, primitives, second_point,
                               train_all)
from protocols import presets

LOSS = presets.LOSS_OPTIMIZERS + presets.MORE_LOSS_OPTIMIZERS
C = optax.contrib

CASES = {
    "sophia": {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.95, "epsilon": 1e-6,
               "weight_decay": 0.01, "gamma": 0.05, "clip_threshold": 0.5,
               "update_interval": 3},
    "momo": {"learning_rate": 0.5, "momentum": 0.8, "lower_bound": 0.0, "weight_decay": 0.01},
    "momo_adam": {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6,
                  "lower_bound": 0.0, "weight_decay": 0.01},
    # A plateau within 8 steps: 2-step averages must fall by half, else the step halves.
    "momentum_plateau": {"learning_rate": 0.05, "momentum": 0.8, "factor": 0.5, "patience": 1,
                         "rtol": 0.5, "accumulation_size": 2},
    "polyak_sgd": {"learning_rate": 0.5, "max_learning_rate": 0.3, "lower_bound": 0.1,
                   "epsilon": 1e-3},
}


def loss(p):
  """The quadratic whose gradient optimizer_harness.grads is, with a quartic term so
  that Sophia's Hessian is not constant."""
  return sum(jnp.sum(0.5 * CURV[k] * (x - CENTRE[k]) ** 2 + 0.01 * (x - CENTRE[k]) ** 4)
             for k, x in p.items())


def optax_own(name, h):
  lr, wd = h["learning_rate"], h.get("weight_decay")
  return {
      "sophia": lambda: C.sophia(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                                 weight_decay=wd, gamma=h["gamma"],
                                 clip_threshold=h["clip_threshold"],
                                 update_interval=h["update_interval"]),
      "momo": lambda: C.momo(lr, beta=h["momentum"], lower_bound=h["lower_bound"],
                             weight_decay=wd),
      "momentum_plateau": lambda: optax.chain(
          optax.trace(decay=h["momentum"]), optax.scale_by_learning_rate(lr),
          C.reduce_on_plateau(factor=h["factor"], patience=h["patience"], rtol=h["rtol"],
                              accumulation_size=h["accumulation_size"])),
      "polyak_sgd": lambda: optax.polyak_sgd(max_learning_rate=h["max_learning_rate"],
                                             scaling=lr, f_min=h["lower_bound"],
                                             eps=h["epsilon"]),
      "momo_adam": lambda: C.momo_adam(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                                       lower_bound=h["lower_bound"], weight_decay=wd),
  }[name]()


def run(tx, params=PARAMS, steps=STEPS):
  return run_state(tx, params, steps)[0]


def run_state(tx, params=PARAMS, steps=STEPS):
  """Params after `steps` updates, each given the loss and its function, as the train step."""
  def body(carry, i):
    p, s = carry
    value, g = jax.value_and_grad(loss)(p)
    u, s = tx.update(g, s, p, value=value, obj_fn=loss, step=i)
    return (optax.apply_updates(p, u), s), None
  return jax.lax.scan(body, (params, tx.init(params)), jnp.arange(steps))[0]


def test_every_rule_is_registered_and_has_a_case():
  check_registered(LOSS, CASES)


@pytest.mark.parametrize("name", LOSS)
def test_matches_optax_with_the_same_hyperparameters(name):
  ours = jax.jit(lambda: run(optimizers.build(name, CASES[name], train_steps=STEPS)))()
  theirs = jax.jit(lambda: run(optax_own(name, CASES[name])))()
  close(ours, theirs, rtol=1e-4, atol=1e-6)  # sophia: its Hessian product by another AD mode
  assert not np.allclose(ours["w"], PARAMS["w"])


def test_the_plateau_cuts_the_step():
  """The case's plateau rule cuts its scale within the run (so the test above sees it)."""
  tx = optimizers.build("momentum_plateau", CASES["momentum_plateau"], train_steps=STEPS)
  state = jax.jit(lambda: run_state(tx))()
  scales = [s.scale for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "scale"))
            if hasattr(s, "scale")]
  assert scales and float(scales[0]) < 1.0, scales


def test_the_reverse_hutchinson_estimate_is_optaxs():
  ours, theirs = optimizer_rules.hutchinson_reverse(), C.hutchinson_estimator_diag_hessian()
  s1, s2 = ours.init(PARAMS), theirs.init(PARAMS)
  for _ in range(3):
    a, s1 = ours.update(PARAMS, s1, PARAMS, obj_fn=loss)
    b, s2 = theirs.update(PARAMS, s2, PARAMS, obj_fn=loss)
    close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LOSS)
def test_a_pack_of_two_equals_two_solo_runs(name):
  check_pack_equals_solo(name, CASES[name],
                         second_point(CASES[name], fixed=("update_interval", "lower_bound",
                                                          "factor", "rtol")),
                         run=run)


def test_under_vmap_the_shared_step_keeps_sophias_hessian_in_a_cond():
  """optax's Sophia refreshes on its own count, which a pack's vmap batches into a select
  (the Hessian product every step); counted by the shared `step` (count_from_step), the
  refresh stays a cond whose branch holds every Rademacher draw; without it, a select."""
  (shared, args), (per_lane, lane_args) = pack_update("sophia", CASES["sophia"], PARAMS,
                                                      jax.grad(loss), step=3, obj_fn=loss)
  draws = lambda prims: [inside for prim, inside in prims if prim == "random_bits"]
  shared = draws(primitives(jax.make_jaxpr(shared)(*args).jaxpr))
  assert shared and all(shared)
  per_lane = draws(primitives(jax.make_jaxpr(per_lane)(*lane_args).jaxpr))
  assert per_lane and not any(per_lane)


@pytest.mark.parametrize("name,key,value,match", [
    ("sophia", "gamma", 0.0, "must be > 0"),
    ("sophia", "update_interval", 0, "must be an integer >= 1"),
    ("momo", "momentum", 1.0, "must be in [0, 1)"),
    ("momo_adam", "epsilon", -1.0, "must be >= 0"),
    ("momentum_plateau", "factor", 1.0, "must be in (0, 1)"),
    ("momentum_plateau", "rtol", 0.0, "must be in (0, 1]"),
    ("momentum_plateau", "patience", 0, "must be an integer >= 1"),
    ("momentum_plateau", "accumulation_size", 2.5, "must be an integer >= 1"),
    ("polyak_sgd", "max_learning_rate", 0.0, "must be > 0"),
    ("polyak_sgd", "epsilon", -1.0, "must be >= 0"),
])
def test_bad_values_are_one_clear_error(name, key, value, match):
  check_bad_value(name, key, value, match)


@pytest.mark.parametrize("name", LOSS)
def test_choi_levels_are_nested_and_their_points_resolve(name):
  check_choi_levels(name, num_trials=8, middle_searches_more=name != "polyak_sgd")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  return train_all(LOSS, tmp_path_factory, "train_loss")


@pytest.mark.parametrize("name", LOSS)
def test_bench_train_trains_with_the_defaults(trained, name):
  check_trained(*trained, name)


def test_sophia_trains_the_cnn_through_the_cpu_convolution(tmp_path):
  p = subprocess.run(
      [sys.executable, "-m", "bench.train", "--workload=mnist1d_cnn", "--optimizer=sophia",
       "--config.train_steps=20", "--config.eval_every=10", "--config.batch_size=32",
       f"--output_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert p.returncode == 0, p.stderr[-3000:]
  rec = json.loads((tmp_path / "record.json").read_text())
  assert rec["status"] == "ok" and len(rec["curve"]) == 2
  assert all(np.isfinite(r["val/loss"]) for r in rec["curve"])
