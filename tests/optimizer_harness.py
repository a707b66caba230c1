"""What the optimizer test files share (tests/test_optimizers_new.py, _more.py, _loss.py,
test_preconditioners.py, test_kron.py): a small quadratic and the trajectory of a rule on
it, the pack-equals-solo check (vmap over the hyperparameter values), the one-line range
error, the Choi levels (nested, every point a valid trial), and `python -m bench.train`
for many rules in one child process. One copy here, imported by each."""
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bench import optimizers
from conftest import ROOT
from protocols import presets, protocol as P, search_space as ss

STEPS = 8

# A tiny tree: a 2-D matrix, a bias, a matrix big enough for Adafactor to factor
# (both dims >= 128) and a 4-D conv kernel; a separable quadratic, so each leaf's
# trajectory depends on that leaf alone.
_rng = np.random.RandomState(0)
PARAMS = {"w": _rng.randn(4, 3), "b": _rng.randn(3), "big": _rng.randn(128, 130) * 0.1,
          "conv": _rng.randn(3, 3, 2, 4)}
PARAMS = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
CURV = {k: jnp.asarray(_rng.uniform(0.5, 3.0, v.shape), jnp.float32) for k, v in PARAMS.items()}
CENTRE = {k: jnp.asarray(_rng.randn(*v.shape) * 0.3, jnp.float32) for k, v in PARAMS.items()}


def grads(p):
  return {k: CURV[k] * (x - CENTRE[k]) for k, x in p.items()}


def trajectory(tx, params=PARAMS, steps=STEPS):
  """Params after each step, and the final state (one jitted scan)."""
  @jax.jit
  def run(params):
    def body(carry, _):
      p, state = carry
      updates, state = tx.update(grads(p), state, p)
      p = optax.apply_updates(p, updates)
      return (p, state), p
    (_, state), ps = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return ps, state
  ps, state = run(params)
  return [jax.tree.map(lambda x: x[i], ps) for i in range(steps)], state


def close(a, b, rtol=1e-6, atol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def check_registered(names, cases):
  """Every name is registered, and its test case sets every hyperparameter it has."""
  assert set(names) <= set(optimizers.REGISTRY)
  assert set(cases) == set(names)
  for name in names:
    assert set(cases[name]) == set(optimizers.entry(name).defaults), name


def check_matches_optax(name, case, optax_own, **tolerance):
  ours, _ = trajectory(optimizers.build(name, case, train_steps=STEPS))
  theirs, _ = trajectory(optax_own(name, case))
  close(ours, theirs, **tolerance)
  assert not np.allclose(ours[-1]["w"], PARAMS["w"])


# ----- packs: vmap over the hyperparameter values -----

def second_point(case, fixed=(), special=None):
  """Another valid point of the same program: every value changed (a beta or momentum
  moved towards 0, the rest doubled), except `fixed`; `special` maps a key to its value."""
  out = {}
  for k, v in case.items():
    if k in fixed:
      out[k] = v
    elif special and k in special:
      out[k] = special[k]
    elif k.startswith("beta") or k in ("momentum", "rho"):
      out[k] = 1 - (1 - v) * 1.5 if v > 0 else 0.3
    else:
      out[k] = v * 2
  return out


def run_on_quadratic(name, steps=STEPS):
  """tx -> the parameters bench evaluates after `steps` updates on the quadratic."""
  def run(tx):
    def body(carry, _):
      p, s = carry
      updates, s = tx.update(grads(p), s, p)
      return (optax.apply_updates(p, updates), s), None
    (p, s), _ = jax.lax.scan(body, (PARAMS, tx.init(PARAMS)), None, length=steps)
    return optimizers.eval_params(name, p, s)
  return run


def check_pack_equals_solo(name, point_a, point_b, run=None, steps=STEPS, rtol=1e-5,
                           atol=1e-6, differ="w"):
  """`run(tx)` -> params; a pack of the two points (one program, vmapped over their
  values) equals the two solo runs, and the two runs differ."""
  run = run or run_on_quadratic(name, steps)
  assert optimizers.program_key(name, point_a) == optimizers.program_key(name, point_b)
  make, values_a = optimizers.factory(name, point_a, train_steps=steps)
  _, values_b = optimizers.factory(name, point_b, train_steps=steps)
  one = lambda values: run(make(values))
  solo = [jax.jit(one)(v) for v in (values_a, values_b)]
  pack = jax.jit(jax.vmap(one))({k: np.stack([values_a[k], values_b[k]]) for k in values_a})
  for i in range(2):
    close(jax.tree.map(lambda x: x[i], pack), solo[i], rtol=rtol, atol=atol)
  assert not np.allclose(solo[0][differ], solo[1][differ])


# ----- hyperparameters: range checks and Choi levels -----

def primitives(jaxpr, inside_cond=False, out=None):
  """(primitive, inside a cond?) of every equation, sub-jaxprs included: where a rule's
  periodic work runs under a pack's vmap (a real cond, or a select after both branches)."""
  out = out if out is not None else []
  for eqn in jaxpr.eqns:
    out.append((eqn.primitive.name, inside_cond))
    for v in eqn.params.values():
      for j in (v if isinstance(v, (tuple, list)) else [v]):
        inner = getattr(j, "jaxpr", j)
        if hasattr(inner, "eqns"):
          primitives(inner, inside_cond or eqn.primitive.name == "cond", out)
  return out


def pack_update(name, case, params, grad_fn, *, step, steps=STEPS, **extra):
  """One update of a pack of two copies of one point (values and parameters stacked, the
  state with a per-lane count), as (fn, args) twice: with the pack's shared `step` (an
  unbatched extra argument, as the train step passes it), then with none (each lane's
  own count). fn(*args) is the update's direction; `extra`: more extra arguments."""
  make, values = optimizers.factory(name, case, train_steps=steps)
  values = {k: np.stack([v, v]) for k, v in values.items()}
  p0 = jax.tree.map(lambda x: jnp.stack([x, x]), params)
  state = jax.vmap(lambda v, p: make(v).init(p))(values, p0)

  def one(values, p, state, step=None):
    kw = extra if step is None else {**extra, "step": step}
    return make(values).update(grad_fn(p), state, p, **kw)[0]
  return ((jax.vmap(one, in_axes=(0, 0, 0, None)), (values, p0, state, step)),
          (jax.vmap(one), (values, p0, state)))


def unordered_lapack_calls(compiled_hlo: str) -> list[tuple[str, str]]:
  """Pairs of LAPACK custom calls in one computation of a compiled program with no data
  path between them (XLA may run such a pair at once: bench.preconditioners.in_turn)."""
  pairs = []
  for body in re.findall(r"\{\n(.*?)\n\}", compiled_hlo, re.S):
    uses, calls = {}, []
    for line in body.splitlines():
      m = re.match(r"\s*(?:ROOT )?(%[\w.\-]+) = (.*)", line)
      if not m:
        continue
      name, rest = m.groups()
      uses[name] = set(re.findall(r"%[\w.\-]+", rest.split("), ")[0]))
      if "custom_call_target=\"lapack" in rest:
        calls.append(name)

    def reaches(a, b, seen=None):
      seen = seen if seen is not None else set()
      for u in uses.get(a, ()):
        if u == b or (u not in seen and not seen.add(u) and reaches(u, b, seen)):
          return True
      return False
    pairs += [(a, b) for i, a in enumerate(calls) for b in calls[i + 1:]
              if not (reaches(a, b) or reaches(b, a))]
  return pairs


def check_bad_value(name, key, value, match):
  """A bad value is one line: '<optimizer>.<key> = <value> <why>'."""
  with pytest.raises(optimizers.OptimizerError) as e:
    optimizers.resolve_hparams(name, {key: value})
  assert str(e.value) == f"{name}.{key} = {value} {match}"


def nested(small, large):
  """Choi's inclusion: every point of the smaller level is one of the larger (a fixed
  weight decay of 0 under a log range counts, as the range's low end <= 1e-5 is)."""
  assert set(small) <= set(large)
  for name, spec in small.items():
    big = large[name]
    if spec["kind"] == "fixed":
      if name == "schedule" and spec["value"] == "constant" and big.get("value") == "linear_decay":
        assert ss.contains(large["decay_factor"], 1.0)
      elif name == "weight_decay" and spec["value"] == 0.0 and big["kind"] == "log":
        assert big["low"] <= 1e-5
      else:
        assert ss.contains(big, spec["value"]), (name, spec, big)
    else:
      assert big["kind"] == spec["kind"] and big["low"] <= spec["low"] <= spec["high"] <= big["high"]


def check_choi_levels(name, num_trials=16, middle_searches_more=True):
  """choi_lr within choi_lr_momentum within choi_all, each searching more (the middle
  level may search only the learning rate where a rule has no momentum); the learning
  rate on a log range of 4 decades or more; every point of every level a valid trial.
  Returns the three search spaces."""
  spaces = [P.as_plain(presets.get(f"choi_{level}", optimizer=name, num_trials=num_trials))
            ["search_space"] for level in presets.CHOI_LEVELS]
  for small, large in zip(spaces, spaces[1:]):
    nested(small, large)
  searched = [sum(spec["kind"] != "fixed" for spec in space.values()) for space in spaces]
  assert searched[2] > searched[1] and searched[0] == 1, searched
  assert searched[1] > searched[0] or not middle_searches_more, searched
  lr = spaces[0]["learning_rate"]
  assert lr["kind"] == "log" and lr["high"] / lr["low"] >= 1e4, lr
  for level in presets.CHOI_LEVELS:
    p = presets.choi(name, level, num_trials=num_trials)
    P.validate(p)
    for point in P.sample_points(p, 0, num_trials):
      optimizers.factory(name, {k: v for k, v in point.items() if k != "optimizer"},
                         train_steps=100)  # every point is a valid trial
  return spaces


# ----- python -m bench.train, once per rule in one child process -----

# The flags are parsed and main() run as `python -m bench.train --optimizer=NAME ...` does;
# a case "NAME=LR" also sets the learning rate, "NAME" leaves the rule's defaults.
CHILD = r"""
import json, sys
from absl import flags
out, common, cases = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
# config_flags registers its --config.* override flags from sys.argv when bench.train
# defines --config: every override used below is named then.
sys.argv = ["bench.train", *common, "--config.hparams.learning_rate=1.0"]
from bench import train
for case in cases:
  name, _, lr = case.partition("=")
  argv = ["bench.train", *common, f"--optimizer={name}", f"--output_dir={out}/{name}"]
  argv += [f"--config.hparams.learning_rate={lr}"] if lr else []
  flags.FLAGS.unparse_flags()
  sys.argv = argv
  try:
    train.main(train.parse_flags(argv))
    code = 0
  except SystemExit as e:
    code = e.code
  print(f"EXIT {name} {code}", flush=True)
"""
# 60 steps of batch 64 on mnist1d_mlp, evaluated every 20: enough for the validation loss
# of every rule at its defaults to fall.
TRAIN_FLAGS = ("--workload=mnist1d_mlp", "--config.batch_size=64", "--config.train_steps=60",
               "--config.eval_every=20")


def train_child(cases, tmp_path_factory, tag, flags=TRAIN_FLAGS):
  """Starts the child (it runs while the caller's in-process tests do): (out, process)."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  out = tmp_path_factory.mktemp(tag)
  proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), json.dumps(list(flags)),
                           *cases], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  return out, proc


def finished(out, proc, timeout=900):
  """The child's (out, stdout) once it has exited 0."""
  try:
    stdout, stderr = proc.communicate(timeout=timeout)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  assert proc.returncode == 0, stderr[-3000:]
  return out, stdout


def train_all(names, tmp_path_factory, tag):
  """bench.train for each name with its defaults, to the end: (out, stdout)."""
  return finished(*train_child(names, tmp_path_factory, tag))


def check_trained(out, stdout, name):
  """The rule trained with its defaults: status ok, its validation loss fell."""
  assert f"EXIT {name} 0" in stdout, stdout[-3000:]
  rec = json.loads((out / name / "record.json").read_text())
  assert rec["optimizer"] == name and rec["status"] == "ok", rec["status_reason"]
  assert rec["hparams"] == dict(optimizers.entry(name).defaults)
  losses = [row["val/loss"] for row in rec["curve"]]
  assert [row["step"] for row in rec["curve"]] == [20, 40, 60]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], (name, losses)
