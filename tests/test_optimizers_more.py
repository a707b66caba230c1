"""The rest of optax / optax.contrib that trains from scratch (presets.MORE_OPTIMIZERS,
issue 21): each against optax's own transformation with the same hyperparameters, packs
(vmap over the hyperparameter values) equal to solo runs, range checks, Choi-style search
spaces, and `python -m bench.train` on mnist1d_mlp with each rule's defaults (its
validation loss falls)."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import optax.contrib
import pytest

from bench import optimizers
from conftest import ROOT
from protocols import presets, protocol as P
from test_optimizers_new import PARAMS, STEPS, _nested, close, grads, trajectory

MORE = presets.MORE_OPTIMIZERS
C = optax.contrib

# Hyperparameters away from the defaults, so that a wrong wiring shows.
CASES = {
    "adan": {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.8, "beta3": 0.95,
             "epsilon": 1e-6, "weight_decay": 0.05},
    "cocob": {"learning_rate": 0.5, "alpha": 50.0, "epsilon": 1e-6, "weight_decay": 0.01},
    "dadapt_adamw": {"learning_rate": 0.5, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6,
                     "estim_lr0": 1e-3, "weight_decay": 0.05},
    "dog": {"learning_rate": 0.5, "reps_rel": 1e-3, "epsilon": 1e-6, "weight_decay": 0.01},
    "dowg": {"learning_rate": 0.5, "epsilon": 1e-2, "weight_decay": 0.01},
    "madgrad": {"learning_rate": 0.05, "momentum": 0.8, "epsilon": 1e-4, "weight_decay": 0.01},
    "sign_sgd": {"learning_rate": 0.01},
    "acprop": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-8,
               "weight_decay": 0.05},
    "adabelief": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-8},
    "yogi": {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-4},
    "amsgrad": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
    "adamax": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
    "novograd": {"learning_rate": 0.05, "beta1": 0.9, "beta2": 0.9, "epsilon": 1e-4,
                 "weight_decay": 0.01},
    "adagrad": {"learning_rate": 0.05, "initial_accumulator": 0.5, "epsilon": 1e-5},
    "adadelta": {"learning_rate": 0.5, "rho": 0.9, "epsilon": 1e-4, "weight_decay": 0.01},
    "fromage": {"learning_rate": 0.05, "min_norm": 1e-4},
}


def optax_own(name, h):
  """optax's transformation built directly with the same hyperparameters."""
  lr = h["learning_rate"]
  wd = h.get("weight_decay")
  return {
      "adan": lambda: optax.adan(lr, b1=h["beta1"], b2=h["beta2"], b3=h["beta3"],
                                 eps=h["epsilon"], weight_decay=wd),
      "cocob": lambda: C.cocob(lr, alpha=h["alpha"], eps=h["epsilon"], weight_decay=wd),
      "dadapt_adamw": lambda: C.dadapt_adamw(lr, betas=(h["beta1"], h["beta2"]),
                                             eps=h["epsilon"], estim_lr0=h["estim_lr0"],
                                             weight_decay=wd),
      "dog": lambda: C.dog(lr, init_step=("heuristic", h["reps_rel"]), eps=h["epsilon"],
                           weight_decay=wd),
      "dowg": lambda: C.dowg(lr, eps=h["epsilon"], weight_decay=wd),
      "madgrad": lambda: C.madgrad(lr, momentum=h["momentum"], eps=h["epsilon"],
                                   weight_decay=wd),
      "sign_sgd": lambda: optax.sign_sgd(lr),
      "acprop": lambda: C.acprop(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                                 eps_root=h["epsilon"], weight_decay=wd),
      "adabelief": lambda: optax.adabelief(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                                           eps_root=h["epsilon"]),
      "yogi": lambda: optax.yogi(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"]),
      "amsgrad": lambda: optax.amsgrad(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"]),
      "adamax": lambda: optax.adamax(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"]),
      "novograd": lambda: optax.novograd(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                                         weight_decay=wd),
      "adagrad": lambda: optax.adagrad(lr, initial_accumulator_value=h["initial_accumulator"],
                                       eps=h["epsilon"]),
      "adadelta": lambda: optax.adadelta(lr, rho=h["rho"], eps=h["epsilon"], weight_decay=wd),
      "fromage": lambda: optax.fromage(lr, min_norm=h["min_norm"]),
  }[name]()


def test_every_rule_is_registered_and_has_a_case():
  assert set(MORE) <= set(optimizers.REGISTRY)
  assert set(CASES) == set(MORE)
  for name in MORE:
    assert set(CASES[name]) == set(optimizers.entry(name).defaults), name


@pytest.mark.parametrize("name", MORE)
def test_matches_optax_with_the_same_hyperparameters(name):
  ours, _ = trajectory(optimizers.build(name, CASES[name], train_steps=STEPS))
  theirs, _ = trajectory(optax_own(name, CASES[name]))
  close(ours, theirs, rtol=1e-5, atol=1e-6)
  assert not np.allclose(ours[-1]["w"], PARAMS["w"])


def _second_point(name):
  """Another valid point of the same program: every value changed."""
  out = {}
  for k, v in CASES[name].items():
    if k in ("beta1", "beta2", "beta3", "momentum", "rho"):
      out[k] = 1 - (1 - v) * 1.5 if v > 0 else 0.3
    else:
      out[k] = v * 2
  return out


def run_values(make, values, name, steps=STEPS):
  tx = make(values)

  def body(carry, _):
    p, s = carry
    updates, s = tx.update(grads(p), s, p)
    return (optax.apply_updates(p, updates), s), None
  (p, s), _ = jax.lax.scan(body, (PARAMS, tx.init(PARAMS)), None, length=steps)
  return optimizers.eval_params(name, p, s)


@pytest.mark.parametrize("name", MORE)
def test_a_pack_of_two_equals_two_solo_runs(name):
  make, values_a = optimizers.factory(name, CASES[name], train_steps=STEPS)
  _, values_b = optimizers.factory(name, _second_point(name), train_steps=STEPS)
  assert optimizers.program_key(name, CASES[name]) == optimizers.program_key(
      name, _second_point(name))
  run = lambda v: run_values(make, v, name)
  solo = [jax.jit(run)(v) for v in (values_a, values_b)]
  stacked = {k: np.stack([values_a[k], values_b[k]]) for k in values_a}
  pack = jax.jit(jax.vmap(run))(stacked)
  for i in range(2):
    close(jax.tree.map(lambda x: x[i], pack), solo[i], rtol=1e-5, atol=1e-6)
  assert not np.allclose(solo[0]["w"], solo[1]["w"])


@pytest.mark.parametrize("name,key,value,match", [
    ("adan", "beta3", 1.0, "must be in [0, 1)"),
    ("cocob", "alpha", 0.0, "must be > 0"),
    ("dadapt_adamw", "estim_lr0", 0.0, "must be > 0"),
    ("dog", "reps_rel", 0.0, "must be > 0"),
    ("dowg", "epsilon", 0.0, "must be > 0"),
    ("madgrad", "momentum", 1.0, "must be in [0, 1)"),
    ("sign_sgd", "learning_rate", -1.0, "must be > 0"),
    ("adabelief", "epsilon", -1.0, "must be >= 0"),
    ("adagrad", "initial_accumulator", -0.1, "must be >= 0"),
    ("adadelta", "rho", 1.0, "must be in [0, 1)"),
    ("fromage", "min_norm", -1.0, "must be >= 0"),
])
def test_bad_values_are_one_clear_error(name, key, value, match):
  with pytest.raises(optimizers.OptimizerError) as e:
    optimizers.resolve_hparams(name, {key: value})
  assert str(e.value) == f"{name}.{key} = {value} {match}"


@pytest.mark.parametrize("name", MORE)
def test_choi_levels_are_nested_and_their_points_resolve(name):
  levels = [P.as_plain(presets.get(f"choi_{level}", optimizer=name, num_trials=16))
            for level in presets.CHOI_LEVELS]
  spaces = [p["search_space"] for p in levels]
  for small, large in zip(spaces, spaces[1:]):
    _nested(small, large)
  searched = [sum(spec["kind"] != "fixed" for spec in space.values()) for space in spaces]
  assert searched[2] > searched[1] >= searched[0] == 1, searched
  assert spaces[0]["learning_rate"]["kind"] == "log"
  assert spaces[0]["learning_rate"]["high"] / spaces[0]["learning_rate"]["low"] >= 1e4
  # Every hyperparameter is searched at 'all' except numerical guards and D-Adaptation's
  # initial estimate (which it grows from; prodigy's estim_lr0 is not searched either).
  guards = {"cocob": {"epsilon"}, "dog": {"epsilon"}, "fromage": {"min_norm"},
            "dadapt_adamw": {"estim_lr0"}}
  for k in optimizers.entry(name).defaults:
    assert (k in spaces[2] and spaces[2][k]["kind"] != "fixed") or \
        k in guards.get(name, ()), (name, k)
  for level in presets.CHOI_LEVELS:
    p = presets.choi(name, level, num_trials=16)
    P.validate(p)
    for point in P.sample_points(p, 0, 16):
      hp = {k: v for k, v in point.items() if k != "optimizer"}
      optimizers.factory(name, hp, train_steps=100)  # every point is a valid trial


# ----- python -m bench.train with each rule's defaults -----

# bench.train once per optimizer in one process (one interpreter start): the flags are
# parsed and main() run as `python -m bench.train --optimizer=NAME ...` does, with the
# optimizer's default hyperparameters.
CHILD = r"""
import sys
from absl import flags
out, names = sys.argv[1], sys.argv[2:]
common = ["--workload=mnist1d_mlp", "--config.batch_size=64", "--config.train_steps=60",
          "--config.eval_every=20"]
sys.argv = ["bench.train", *common]
from bench import train
for name in names:
  argv = ["bench.train", *common, f"--optimizer={name}", f"--output_dir={out}/{name}"]
  flags.FLAGS.unparse_flags()
  sys.argv = argv
  try:
    train.main(train.parse_flags(argv))
    code = 0
  except SystemExit as e:
    code = e.code
  print(f"EXIT {name} {code}", flush=True)
"""


def train_child(names, tmp_path_factory, tag):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  out = tmp_path_factory.mktemp(tag)
  proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), *names], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return out, proc


def check_trained(out, proc_out, name):
  stdout = proc_out
  assert f"EXIT {name} 0" in stdout, stdout[-3000:]
  rec = json.loads((out / name / "record.json").read_text())
  assert rec["optimizer"] == name and rec["status"] == "ok", rec["status_reason"]
  assert rec["hparams"] == dict(optimizers.entry(name).defaults)
  losses = [row["val/loss"] for row in rec["curve"]]
  assert [row["step"] for row in rec["curve"]] == [20, 40, 60]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], (name, losses)


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory):
  out, proc = train_child(MORE, tmp_path_factory, "train")
  try:
    stdout, stderr = proc.communicate(timeout=900)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, stderr[-3000:]
  return out, stdout


@pytest.mark.parametrize("name", MORE)
def test_bench_train_trains_with_the_defaults(trained, name):
  check_trained(trained[0], trained[1], name)
