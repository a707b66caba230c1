"""The recent optimizers of bench.optimizers (presets.MODERN_OPTIMIZERS): each against
optax's own transformation with the same hyperparameters, the sign methods and
schedule-free SGD against NumPy transcriptions of their papers' rules, Muon's
orthogonalised step and its split of a parameter tree, packs (vmap over the
hyperparameter values), range checks, Choi-style search spaces, and
`python -m bench.train` for each."""
import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

from bench import optimizers
from conftest import ROOT
from optimizer_harness import (PARAMS, STEPS, TRAIN_FLAGS, check_bad_value,
                               check_choi_levels, check_matches_optax,
                               check_pack_equals_solo, check_registered, close, finished,
                               second_point, train_child, trajectory)
from protocols import presets, protocol as P

NEW = presets.MODERN_OPTIMIZERS

# Hyperparameters away from the defaults, so that a wrong wiring shows.
CASES = {
    "lion": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "weight_decay": 0.1},
    "signum": {"learning_rate": 0.01, "momentum": 0.7},
    "adopt": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-4},
    "ademamix": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "beta3": 0.999,
                 "alpha": 3.0, "epsilon": 1e-6, "weight_decay": 0.05},
    "muon": {"learning_rate": 0.02, "momentum": 0.9, "beta1": 0.8, "beta2": 0.99,
             "epsilon": 1e-7, "weight_decay": 0.05},
    "prodigy": {"learning_rate": 0.5, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6,
                "weight_decay": 0.05, "estim_lr0": 1e-3},
    "schedule_free_sgd": {"learning_rate": 0.05, "momentum": 0.8, "weight_decay": 0.01},
    "adafactor": {"learning_rate": 0.05, "beta1": 0.5, "decay_rate": 0.7, "epsilon": 1e-20},
    "radam": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
}


def optax_own(name, h):
  """optax's transformation built directly with the same hyperparameters."""
  lr = h["learning_rate"]
  if name == "lion":
    return optax.lion(lr, b1=h["beta1"], b2=h["beta2"], weight_decay=h["weight_decay"])
  if name == "signum":
    return optax.signum(lr, beta=h["momentum"])
  if name == "adopt":
    return optax.contrib.adopt(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])
  if name == "ademamix":
    return optax.contrib.ademamix(lr, b1=h["beta1"], b2=h["beta2"], b3=h["beta3"],
                                  alpha=h["alpha"], eps=h["epsilon"],
                                  weight_decay=h["weight_decay"])
  if name == "muon":
    return optax.contrib.muon(lr, beta=h["momentum"], eps=h["epsilon"],
                              weight_decay=h["weight_decay"], adam_b1=h["beta1"],
                              adam_b2=h["beta2"], adam_weight_decay=h["weight_decay"])
  if name == "prodigy":
    return optax.contrib.prodigy(lr, betas=(h["beta1"], h["beta2"]), eps=h["epsilon"],
                                 estim_lr0=h["estim_lr0"], weight_decay=h["weight_decay"])
  if name == "schedule_free_sgd":
    return optax.contrib.schedule_free_sgd(lr, b1=h["momentum"],
                                           weight_decay=h["weight_decay"])
  if name == "adafactor":
    return optax.adafactor(lr, decay_rate=h["decay_rate"], momentum=h["beta1"],
                           eps=h["epsilon"])
  if name == "radam":
    return optax.radam(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])
  raise KeyError(name)


def test_every_new_optimizer_is_registered_and_has_a_case():
  check_registered(NEW, CASES)


@pytest.mark.parametrize("name", NEW)
def test_matches_optax_with_the_same_hyperparameters(name):
  check_matches_optax(name, CASES[name], optax_own)


# ----- NumPy transcriptions of the papers' rules -----

A = np.diag([1.0, 3.0, 0.5])
THETA0 = np.array([1.0, -2.0, 0.5])


def run_vector(name, h, steps=STEPS, schedule=None):
  tx = optimizers.build(name, {**h, **(schedule or {})}, train_steps=steps)
  theta = jnp.asarray(THETA0, jnp.float32)
  state = tx.init(theta)
  for _ in range(steps):
    u, state = tx.update(jnp.asarray(A, jnp.float32) @ theta, state, theta)
    theta = optax.apply_updates(theta, u)
  return np.asarray(theta, np.float64), state


def test_lion_is_its_paper_rule():
  """Chen et al. 2023, Algorithm 2: c = b1 m + (1-b1) g; theta -= lr (sign c + wd theta);
  m = b2 m + (1-b2) g."""
  h = CASES["lion"]
  theta, m = THETA0.copy(), np.zeros(3)
  for _ in range(STEPS):
    g = A @ theta
    c = h["beta1"] * m + (1 - h["beta1"]) * g
    theta = theta - h["learning_rate"] * (np.sign(c) + h["weight_decay"] * theta)
    m = h["beta2"] * m + (1 - h["beta2"]) * g
  np.testing.assert_allclose(run_vector("lion", h)[0], theta, rtol=1e-6, atol=1e-6)


def test_signum_is_its_paper_rule():
  """Bernstein et al. 2018, Algorithm 3: m = beta m + (1-beta) g; theta -= lr sign(m)."""
  h = CASES["signum"]
  theta, m = THETA0.copy(), np.zeros(3)
  for _ in range(STEPS):
    m = h["momentum"] * m + (1 - h["momentum"]) * (A @ theta)
    theta = theta - h["learning_rate"] * np.sign(m)
  np.testing.assert_allclose(run_vector("signum", h)[0], theta, rtol=1e-6, atol=1e-6)


def test_lion_without_momentum_or_decay_is_sign_descent():
  lr = 0.05
  theta = THETA0.copy()
  for _ in range(STEPS):
    theta = theta - lr * np.sign(A @ theta)
  lion = run_vector("lion", {"learning_rate": lr, "beta1": 0.0, "beta2": 0.0,
                             "weight_decay": 0.0})[0]
  np.testing.assert_allclose(lion, theta, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(run_vector("signum", {"learning_rate": lr, "momentum": 0.0})[0],
                             theta, rtol=1e-6, atol=1e-6)


def test_schedule_free_sgd_params_and_evaluation_point():
  """Defazio et al. 2024, SGD-SF with optax's warmup and weighting: y (the params)
  = (1-b) z + b x; z -= lr_{t-1} (g(y) + wd y); x = (1-c) x + c z with
  c = max_lr_t^2 / sum max_lr^2; evaluated at x (bench.optimizers.eval_params)."""
  h, warmup = CASES["schedule_free_sgd"], 3
  lr_at = lambda t: h["learning_rate"] * min(t, warmup) / warmup
  b, wd = h["momentum"], h["weight_decay"]
  y, z, x = THETA0.copy(), THETA0.copy(), THETA0.copy()
  weight_sum, max_lr = 0.0, 0.0
  for t in range(1, STEPS + 1):
    max_lr = max(max_lr, lr_at(t))
    weight_sum += max_lr ** 2
    c = max_lr ** 2 / weight_sum
    z = z - lr_at(t - 1) * (A @ y + wd * y)
    x = (1 - c) * x + c * z
    y = (1 - b) * z + b * x
  ours, state = run_vector("schedule_free_sgd", {**h, "warmup_steps": warmup})
  np.testing.assert_allclose(ours, y, rtol=1e-5, atol=1e-6)
  evaluated = optimizers.eval_params("schedule_free_sgd", jnp.asarray(ours, jnp.float32), state)
  np.testing.assert_allclose(np.asarray(evaluated), x, rtol=1e-5, atol=1e-6)
  assert not np.allclose(x, y)


def test_schedule_free_sgd_ignores_the_decay_schedule():
  """As schedule_free_adamw: its averaging replaces the decay (warmup_steps is its own)."""
  h = CASES["schedule_free_sgd"]
  np.testing.assert_array_equal(
      run_vector("schedule_free_sgd", h)[0],
      run_vector("schedule_free_sgd", h, schedule={"schedule": "linear_decay",
                                                   "decay_factor": 0.01})[0])


@pytest.mark.parametrize("name", [n for n in NEW if n != "schedule_free_sgd"])
def test_the_learning_rate_schedule_scales_every_step(name):
  """Linear decay to 0 over 4 steps: nothing moves after step 4 (adafactor without
  momentum: its momentum buffer holds lr-scaled steps, as the next test shows)."""
  h = {**CASES[name], **({"beta1": 0.0} if name == "adafactor" else {})}
  hp = {**h, "schedule": "linear_decay", "decay_factor": 0.0, "decay_steps": 4}
  steps, _ = trajectory(optimizers.build(name, hp))
  assert not np.allclose(steps[3]["w"], PARAMS["w"])
  close(steps[-1], steps[3], rtol=0, atol=0)


def test_adafactor_keeps_the_learning_rate_inside_its_momentum():
  hp = {**CASES["adafactor"], "schedule": "linear_decay", "decay_factor": 0.0,
        "decay_steps": 4}
  steps, _ = trajectory(optimizers.build("adafactor", hp))
  assert not np.allclose(steps[-1]["w"], steps[3]["w"])


def test_adafactor_zero_beta1_is_optax_without_momentum():
  h = {**CASES["adafactor"], "beta1": 0.0}
  ours, _ = trajectory(optimizers.build("adafactor", h))
  theirs, _ = trajectory(optax.adafactor(h["learning_rate"], decay_rate=h["decay_rate"],
                                         eps=h["epsilon"]))
  close(ours, theirs)


def test_adafactor_factors_only_large_matrices():
  _, state = trajectory(optimizers.build("adafactor", CASES["adafactor"]), steps=1)
  fac = state.inner_state[0]
  assert fac.v_row["big"].shape == (128,) and fac.v_col["big"].shape == (130,)
  assert fac.v["w"].shape == (4, 3) and fac.v["big"].shape == (1,)


# ----- Muon -----

def test_muon_matrix_step_is_nearly_orthogonal():
  """First step from zero momentum: -(update) / lr is Newton-Schulz-5 of the gradient,
  close to its polar factor U V^T (singular values in ~[0.7, 1.1], not all 1)."""
  rng = np.random.RandomState(1)
  w, g = (jnp.asarray(rng.randn(8, 5), jnp.float32) for _ in range(2))
  lr = 0.1
  tx = optimizers.build("muon", {"learning_rate": lr})
  u, _ = tx.update({"w": g}, tx.init({"w": w}), {"w": w})
  step = -np.asarray(u["w"]) / lr  # width scale sqrt(max(1, 5/8)) = 1
  sv = np.linalg.svd(step, compute_uv=False)
  assert 0.5 < sv.min() and sv.max() < 1.5, sv
  left, _, right = np.linalg.svd(np.asarray(g), full_matrices=False)
  polar = left @ right
  cosine = np.sum(step * polar) / np.linalg.norm(step) / np.linalg.norm(polar)
  assert cosine > 0.95, cosine
  # optax's own muon gives the same step.
  theirs, _ = optax.contrib.muon(lr).update({"w": g}, optax.contrib.muon(lr).init({"w": w}),
                                            {"w": w})
  np.testing.assert_allclose(np.asarray(u["w"]), np.asarray(theirs["w"]), rtol=1e-6, atol=1e-7)


def test_muon_splits_the_tree_by_rank():
  """Only 2-D leaves are orthogonalised; the bias and the 4-D conv kernel follow NAdamW
  with the same lr, betas, eps and weight decay."""
  h = CASES["muon"]
  ours, _ = trajectory(optimizers.build("muon", h))
  nadamw = optax.adamw(h["learning_rate"], b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                       weight_decay=h["weight_decay"], nesterov=True)
  rest = {k: PARAMS[k] for k in ("b", "conv")}
  theirs, _ = trajectory(nadamw, params=rest)
  close([{k: p[k] for k in rest} for p in ours], theirs)
  alone, _ = trajectory(nadamw, params={"w": PARAMS["w"]})
  assert not np.allclose(ours[-1]["w"], alone[-1]["w"], rtol=1e-3)


# ----- packs: vmap over the hyperparameter values -----

@pytest.mark.parametrize("name", NEW)
def test_a_pack_of_two_equals_two_solo_runs(name):
  check_pack_equals_solo(name, CASES[name], second_point(CASES[name],
                                                         special={"decay_rate": 0.9}))


def test_harness_pack_lanes_equal_solo_trials(name="muon"):
  """The same through the harness (bench.trial.run_pack) for Muon, which treats leaves
  by shape, on mnist1d_mlp's flax tree."""
  from bench import trial
  lr = optimizers.entry(name).defaults["learning_rate"]
  prepared = [trial.prepare(trial.spec(
      "mnist1d_mlp", name, {"learning_rate": lr * f, "schedule": "cosine", "warmup_steps": 3},
      seed=i, batch_size=32, train_steps=12, eval_every=12, eval_test=False))
              for i, f in enumerate((0.5, 2.0))]
  solo = [trial.run(p, log=lambda s: None) for p in prepared]
  packed = trial.run_pack(prepared, [lambda s: None] * 2, [None] * 2, [None] * 2)
  assert [r["pack_size"] for r in packed] == [2, 2]
  for a, b in zip(solo, packed):
    assert a["status"] == b["status"] == "ok"
    for k, v in a["curve"][-1].items():
      if k != "wall_time":
        np.testing.assert_allclose(b["curve"][-1][k], v, rtol=1e-5, atol=1e-6, err_msg=k)
  assert solo[0]["curve"][-1]["train/loss"] != solo[1]["curve"][-1]["train/loss"]


# ----- range checks -----

@pytest.mark.parametrize("name,key,value,match", [
    ("lion", "beta2", 1.0, "must be in [0, 1)"),
    ("signum", "momentum", -0.1, "must be in [0, 1)"),
    ("adopt", "epsilon", -1e-6, "must be >= 0"),
    ("ademamix", "beta3", 1.0, "must be in [0, 1)"),
    ("ademamix", "alpha", -1.0, "must be >= 0"),
    ("muon", "momentum", 1.0, "must be in [0, 1)"),
    ("prodigy", "estim_lr0", 0.0, "must be > 0"),
    ("prodigy", "learning_rate", 0.0, "must be > 0"),
    ("schedule_free_sgd", "momentum", 0.0, "must be in (0, 1) for a schedule-free method"),
    ("schedule_free_adamw", "beta1", 0.0, "must be in (0, 1) for a schedule-free method"),
    ("adafactor", "decay_rate", 0.0, "must be in (0, 1]"),
    ("adafactor", "decay_rate", 1.5, "must be in (0, 1]"),
    ("radam", "beta1", 1.0, "must be in [0, 1)"),
])
def test_bad_values_are_one_clear_error(name, key, value, match):
  check_bad_value(name, key, value, match)


def test_new_names_reject_other_rules_hyperparameters():
  with pytest.raises(optimizers.OptimizerError, match="no hyperparameter 'rho'"):
    optimizers.resolve_hparams("lion", {"rho": 0.9})


# ----- Choi-style search spaces -----

@pytest.mark.parametrize("name", NEW)
def test_choi_levels_are_nested_and_their_points_resolve(name):
  check_choi_levels(name)


def test_choi_still_rejects_rules_without_a_space():
  with pytest.raises(P.ProtocolError, match="optimizer must be one of"):
    presets.choi("lamb", "lr")
  assert presets.CHOI_OPTIMIZERS == ("sgd", "momentum", "nesterov", "rmsprop", "adam", "nadam")


# ----- python -m bench.train -----

# bench.train once per optimizer in one process (one interpreter start, not nine), each
# at a learning rate of its scale, 20 steps of batch 32.
TRAIN_LR = {"lion": 1e-3, "signum": 1e-3, "adopt": 3e-3, "ademamix": 3e-3, "muon": 0.02,
            "prodigy": 1.0, "schedule_free_sgd": 0.1, "adafactor": 1e-2, "radam": 3e-3}


@pytest.fixture(scope="module", autouse=True)
def _children(request, tmp_path_factory):
  """Starts the bench.train and bench.perf children with the module's first test (those
  whose tests the run includes), so that they run while the in-process tests do."""
  wanted = {item.name.split("[")[0] for item in request.session.items
            if item.module is request.module}
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  procs = {}
  if "test_bench_train_runs" in wanted:
    procs["train"] = train_child([f"{n}={TRAIN_LR[n]}" for n in NEW], tmp_path_factory,
                                 "train", flags=(*TRAIN_FLAGS[:1], "--config.batch_size=32",
                                                 "--config.train_steps=20",
                                                 "--config.eval_every=20"))
  if "test_perf_measures_optimizer_steps_against_sgd" in wanted:
    out = tmp_path_factory.mktemp("perf") / "perf.json"
    procs["perf"] = out, subprocess.Popen(
        [sys.executable, "-m", "bench.perf", "--optimizers=lion", "--batch_sizes=16",
         "--train_steps=5", "--repeats=2", f"--out={out}", "--markdown="],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  yield procs
  for _, proc in procs.values():
    if proc.poll() is None:
      proc.kill()
      proc.communicate()


def _finished(procs, which):
  return finished(*procs[which], timeout=600)


@pytest.fixture(scope="module")
def trained(_children):
  return _finished(_children, "train")


@pytest.mark.parametrize("name", NEW)
def test_bench_train_runs(trained, name):
  out, stdout = trained
  assert f"EXIT {name} 0" in stdout, stdout[-3000:]
  rec = json.loads((out / name / "record.json").read_text())
  assert rec["optimizer"] == name and rec["status"] == "ok", rec["status_reason"]
  assert rec["hparams"] == {**optimizers.entry(name).defaults, "learning_rate": TRAIN_LR[name]}
  row = rec["curve"][-1]
  assert row["step"] == 20 and np.isfinite(row["val/loss"]) and np.isfinite(row["train/loss"])


# ----- bench.perf --optimizers -----

def test_perf_measures_optimizer_steps_against_sgd(_children):
  out, stdout = _finished(_children, "perf")
  rows = json.loads(out.read_text())
  assert [r["mode"] for r in rows] == ["step_sgd", "step_lion"]
  assert rows[0]["vs_sgd"] == 1.0 and all(r["vs_sgd"] > 0 for r in rows)
  for r in rows:
    assert r["batch_size"] == 16 and r["workload"] == "mnist1d_mlp" and r["commit"]
    assert r["device"] and len(r["all_seconds"]) == 2 and r["finite_loss"]
  assert "x sgd" in stdout and "lion" in stdout
