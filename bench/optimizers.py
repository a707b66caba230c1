"""Optimizers by name, built from optax, following the Tuning Playbook FAQ's update rules.

  sgd        theta -= lr_t * g
  momentum   v = gamma v + g;              theta -= lr_t * v            (lr outside the buffer)
  nesterov   v = gamma v + g;              theta -= lr_t * (gamma v + g)
  rmsprop    v0 = 1; v = rho v + (1-rho) g^2; m = gamma m + lr_t g / sqrt(v + eps); theta -= m
             (eps inside the sqrt, lr inside the momentum buffer)
  adam       m, v as usual; b_t = sqrt(1-beta2^t)/(1-beta1^t);
             theta -= lr_t * m / (sqrt(v) + eps) * b_t   (eps on the uncorrected sqrt(v))
  nadam      as adam with numerator beta1 m + (1-beta1) g
  adamw, nadamw   add decoupled weight decay: theta -= lr_t * weight_decay * theta
  lamb, lars, schedule_free_adamw   optax's implementations (large-batch / recent methods)

Every optimizer also takes the schedule hyperparameters of bench.schedules.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib

from bench import schedules


class OptimizerError(ValueError):
  pass


class PlaybookAdamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any


def scale_by_playbook_adam(b1: Any, b2: Any, eps: Any, nesterov: bool = False
                           ) -> optax.GradientTransformation:
  """Adam / NAdam direction in the playbook's form: eps is added to the
  *uncorrected* sqrt(v) and the bias correction multiplies the whole step.
  (optax.scale_by_adam adds eps to the corrected sqrt(v_hat), a different rule.)"""

  def init(params):
    # Two separate trees: the train loop donates buffers, so mu and nu must not alias.
    return PlaybookAdamState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params),
                             jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
    count = optax.safe_int32_increment(state.count)
    t = count.astype(jnp.float32)
    correction = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    if nesterov:
      numer = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, mu, updates)
    else:
      numer = mu
    out = jax.tree.map(lambda n, v: correction * n / (jnp.sqrt(v) + eps), numer, nu)
    return out, PlaybookAdamState(count, mu, nu)

  return optax.GradientTransformation(init, update)


def _sgd(lr, h):
  return optax.scale_by_learning_rate(lr)


def _heavy_ball(nesterov):
  def make(lr, h):
    return optax.chain(optax.trace(decay=h["momentum"], nesterov=nesterov),
                       optax.scale_by_learning_rate(lr))
  return make


def _rmsprop(lr, h):
  return optax.chain(
      optax.scale_by_rms(decay=h["rho"], eps=h["epsilon"], initial_scale=1.0, eps_in_sqrt=True),
      optax.scale_by_learning_rate(lr),
      optax.trace(decay=h["momentum"]))


def _adam(nesterov, decoupled):
  def make(lr, h):
    parts = [scale_by_playbook_adam(h["beta1"], h["beta2"], h["epsilon"], nesterov)]
    if decoupled:
      parts.append(optax.add_decayed_weights(h["weight_decay"]))
    parts.append(optax.scale_by_learning_rate(lr))
    return optax.chain(*parts)
  return make


def _lamb(lr, h):
  return optax.lamb(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                    weight_decay=h["weight_decay"])


def _lars(lr, h):
  return optax.lars(lr, weight_decay=h["weight_decay"], momentum=h["momentum"],
                    trust_coefficient=h["trust_coefficient"], nesterov=False)


def _schedule_free_adamw(lr, h):
  # Schedule-free methods replace the decay schedule; warmup_steps is theirs.
  return optax.contrib.schedule_free_adamw(
      learning_rate=h["learning_rate"], warmup_steps=int(h.get("warmup_steps") or 0) or None,
      b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"], weight_decay=h["weight_decay"])


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """A named update rule: its factory and its hyperparameters with defaults."""
  name: str
  make: Callable[[optax.Schedule, Mapping[str, Any]], optax.GradientTransformation]
  defaults: Mapping[str, float]
  doc: str
  schedule_free: bool = False
  # Hyperparameters that must be Python values when the rule is built (they
  # shape the program); all others are values of the program.
  static_hparams: tuple[str, ...] = ()


_ADAM_DEFAULTS = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}

REGISTRY: dict[str, OptimizerSpec] = {s.name: s for s in [
    OptimizerSpec("sgd", _sgd, {"learning_rate": 0.1}, "plain SGD"),
    OptimizerSpec("momentum", _heavy_ball(False), {"learning_rate": 0.1, "momentum": 0.9},
                  "heavy-ball momentum, lr outside the buffer"),
    OptimizerSpec("nesterov", _heavy_ball(True), {"learning_rate": 0.1, "momentum": 0.9},
                  "Nesterov momentum, lr outside the buffer"),
    OptimizerSpec("rmsprop", _rmsprop,
                  {"learning_rate": 1e-3, "momentum": 0.0, "rho": 0.9, "epsilon": 1e-10},
                  "RMSProp, v0 = 1, eps inside the sqrt, lr inside the momentum buffer"),
    OptimizerSpec("adam", _adam(False, False), _ADAM_DEFAULTS, "Adam (playbook form)"),
    OptimizerSpec("nadam", _adam(True, False), _ADAM_DEFAULTS, "NAdam (playbook form)"),
    OptimizerSpec("adamw", _adam(False, True), {**_ADAM_DEFAULTS, "weight_decay": 1e-4},
                  "Adam with decoupled weight decay"),
    OptimizerSpec("nadamw", _adam(True, True), {**_ADAM_DEFAULTS, "weight_decay": 1e-4},
                  "NAdam with decoupled weight decay"),
    OptimizerSpec("lamb", _lamb, {**_ADAM_DEFAULTS, "epsilon": 1e-6, "weight_decay": 0.0},
                  "LAMB (optax.lamb): layer-wise trust ratio on an Adam step"),
    OptimizerSpec("lars", _lars, {"learning_rate": 1.0, "momentum": 0.9, "weight_decay": 0.0,
                                  "trust_coefficient": 0.001},
                  "LARS (optax.lars): layer-wise trust ratio on momentum SGD"),
    OptimizerSpec("schedule_free_adamw", _schedule_free_adamw,
                  {"learning_rate": 2.5e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                   "weight_decay": 0.0},
                  "schedule-free AdamW (optax.contrib); evaluate at its averaged point",
                  schedule_free=True, static_hparams=("warmup_steps",)),
]}


def register(name: str, make: Callable[[optax.Schedule, Mapping[str, Any]],
                                        optax.GradientTransformation],
             defaults: Mapping[str, float], doc: str, **options: Any) -> OptimizerSpec:
  """Add an update rule by name: `make(learning_rate_schedule, hparams)` builds
  it from its hyperparameters (every name in `defaults`, which must include
  learning_rate, plus the schedule's), as the entries above do. Call it from a
  file of your own that your recipe imports (or that bench.train loads with
  --optimizer=FILE.py:NAME); it then works in protocols, studies and packs."""
  if not name or not isinstance(name, str) or ":" in name:
    raise OptimizerError(f"optimizer name must be a non-empty string without ':', got {name!r}")
  if "learning_rate" not in defaults:
    raise OptimizerError(f"optimizer {name!r}: defaults must include learning_rate")
  REGISTRY[name] = OptimizerSpec(name, make, dict(defaults), doc, **options)
  return REGISTRY[name]


def spec(name: str) -> OptimizerSpec:
  if name not in REGISTRY:
    raise OptimizerError(f"unknown optimizer {name!r}; known: {', '.join(REGISTRY)}")
  return REGISTRY[name]


def load(name: str) -> str:
  """'path/to/file.py:NAME' -> NAME after running the file (which registers it);
  a plain name is returned as it is."""
  path, sep, short = name.rpartition(":")
  if not sep or not path.endswith(".py"):
    return name
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise OptimizerError(f"optimizer file not found: {path}")
  mod_spec = importlib.util.spec_from_file_location(
      "user_optimizer_" + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  spec(short)  # registered by the file, or one clear line
  return short


def resolve_hparams(name: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
  """Defaults filled in, unknown names and bad values rejected (one clear message)."""
  s = spec(name)
  given = {k: v for k, v in hparams.items() if v is not None}
  allowed = set(s.defaults) | set(schedules.SCHEDULE_HPARAMS)
  unknown = sorted(set(given) - allowed)
  if unknown:
    raise OptimizerError(
        f"optimizer {name!r} has no hyperparameter {', '.join(map(repr, unknown))} "
        f"(it takes: {', '.join(sorted(allowed))})")
  out = {**s.defaults, **given}
  for key, value in out.items():
    if key == "schedule":
      continue
    if not isinstance(value, (int, float)) or isinstance(value, bool):
      if not hasattr(value, "dtype"):  # jax/numpy scalars pass (trial packing)
        raise OptimizerError(f"{name}.{key} must be a number, got {value!r}")
      continue
    if value != value or value in (float("inf"), float("-inf")):
      raise OptimizerError(f"{name}.{key} must be finite, got {value}")
  _check_ranges(name, out)
  return out


def _check_ranges(name: str, h: Mapping[str, Any]) -> None:
  def bad(key, why):
    raise OptimizerError(f"{name}.{key} = {h[key]} {why}")
  for key in ("learning_rate",):
    if isinstance(h[key], (int, float)) and h[key] <= 0:
      bad(key, "must be > 0")
  for key in ("momentum", "beta1", "beta2", "rho"):
    if key in h and isinstance(h[key], (int, float)) and not 0 <= h[key] < 1:
      bad(key, "must be in [0, 1)")
  for key in ("epsilon", "weight_decay"):
    if key in h and isinstance(h[key], (int, float)) and h[key] < 0:
      bad(key, "must be >= 0")


def build(name: str, hparams: Mapping[str, Any], *, train_steps: int | None = None
          ) -> optax.GradientTransformation:
  """The update rule `name` with its hyperparameters and learning-rate schedule
  (hyperparameters injected into its state, see `factory`)."""
  make, values = factory(name, hparams, train_steps=train_steps)
  return make(values)


def factory(name: str, hparams: Mapping[str, Any], *, train_steps: int | None = None
            ) -> tuple[Callable[[Mapping[str, Any]], optax.GradientTransformation],
                       dict[str, np.ndarray]]:
  """(make, values): `make(values)` is the update rule with its numeric
  hyperparameters held in the optimizer state (optax.inject_hyperparams), so
  they are values of the compiled program, not constants: every trial of a
  study compiles to the same program, and a pack of trials (a leading trial
  axis over the state) carries each trial's own. Only the schedule's form (and
  what an optimizer lists in `static_hparams`) shapes the program; step counts
  are int32 values, the rest float32. `update` reads the values from the
  state, so one `make(...)` object serves every trial of the program."""
  h = resolve_hparams(name, hparams)
  s = spec(name)
  full = {k: v for k, v in {**h, **schedules.step_values(h, train_steps)}.items()
          if k != "decay_steps_fraction"}
  static = {k: v for k, v in full.items() if k == "schedule" or k in s.static_hparams}
  # 0-d arrays: inject_hyperparams treats np.float32 scalars as static arguments.
  values = {k: np.asarray(v, np.int32 if k in schedules.STEP_HPARAMS else np.float32)
            for k, v in full.items() if k not in static}

  def rule(**v):
    hv = {**static, **v}
    return s.make(schedules.build_schedule(hv["learning_rate"], hv), hv)
  rule.__signature__ = inspect.Signature(
      [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in sorted(values)])
  inject = optax.inject_hyperparams(rule)
  return (lambda v: inject(**v)), values


def program_key(name: str, hparams: Mapping[str, Any]) -> tuple:
  """What of a trial's optimizer settings shapes the compiled program."""
  h = resolve_hparams(name, hparams)
  return (name,) + tuple(sorted((k, v) for k, v in h.items()
                                if k == "schedule" or k in spec(name).static_hparams))


def eval_params(name: str, params: Any, opt_state: Any) -> Any:
  """Parameters to evaluate: schedule-free methods evaluate their averaged point."""
  if spec(name).schedule_free:
    return optax.contrib.schedule_free_eval_params(opt_state.inner_state, params)
  return params
