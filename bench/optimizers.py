"""Optimizers by name: the registry of update rules, their defaults, checks and builders.

Every rule's update (the Tuning Playbook FAQ's forms for the 2019 set, optax's
own for the rest) is written in bench/optimizer_rules.py, with the formulas;
here each gets its name, its hyperparameters' defaults (the one place they are
written: protocols' search spaces hold a hyperparameter below its Choi level at
this default), range checks and the builder bench.program compiles.
`register` adds one of yours. Every optimizer also takes the schedule
hyperparameters of bench.schedules.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping

import numpy as np
import optax

from bench import optimizer_rules as rules
from bench import schedules, userfiles


class OptimizerError(ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class OptimizerEntry:
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
# Shampoo: Adam-grafted (Anil et al. 2020's AlgoPerf form) at Adam's defaults; matrix
# ridge 1e-6 of the largest eigenvalue; -1/4 per side of a matrix; preconditioners
# recomputed every 10 steps (SOAP's default frequency; Anil et al. use 1-100s).
_SHAMPOO_DEFAULTS = {**_ADAM_DEFAULTS, "weight_decay": 0.0, "matrix_epsilon": 1e-6,
                     "exponent_multiplier": 1.0, "block_size": 128,
                     "precondition_frequency": 10}
_PRECONDITIONER_STATIC = ("block_size", "precondition_frequency")

REGISTRY: dict[str, OptimizerEntry] = {s.name: s for s in [
    OptimizerEntry("sgd", rules.sgd, {"learning_rate": 0.1}, "plain SGD"),
    OptimizerEntry("momentum", rules.heavy_ball(False), {"learning_rate": 0.1, "momentum": 0.9},
                  "heavy-ball momentum, lr outside the buffer"),
    OptimizerEntry("nesterov", rules.heavy_ball(True), {"learning_rate": 0.1, "momentum": 0.9},
                  "Nesterov momentum, lr outside the buffer"),
    OptimizerEntry("rmsprop", rules.rmsprop,
                  {"learning_rate": 1e-3, "momentum": 0.0, "rho": 0.9, "epsilon": 1e-10},
                  "RMSProp, v0 = 1, eps inside the sqrt, lr inside the momentum buffer"),
    OptimizerEntry("adam", rules.adam(False, False), _ADAM_DEFAULTS, "Adam (playbook form)"),
    OptimizerEntry("nadam", rules.adam(True, False), _ADAM_DEFAULTS, "NAdam (playbook form)"),
    OptimizerEntry("adamw", rules.adam(False, True), {**_ADAM_DEFAULTS, "weight_decay": 1e-4},
                  "Adam with decoupled weight decay"),
    OptimizerEntry("nadamw", rules.adam(True, True), {**_ADAM_DEFAULTS, "weight_decay": 1e-4},
                  "NAdam with decoupled weight decay"),
    OptimizerEntry("lamb", rules.lamb, {**_ADAM_DEFAULTS, "epsilon": 1e-6, "weight_decay": 0.0},
                  "LAMB (optax.lamb): layer-wise trust ratio on an Adam step"),
    OptimizerEntry("lars", rules.lars, {"learning_rate": 1.0, "momentum": 0.9, "weight_decay": 0.0,
                                  "trust_coefficient": 0.001},
                  "LARS (optax.lars): layer-wise trust ratio on momentum SGD"),
    OptimizerEntry("schedule_free_adamw", rules.schedule_free_adamw,
                  {"learning_rate": 2.5e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                   "weight_decay": 0.0},
                  "schedule-free AdamW (optax.contrib); evaluate at its averaged point",
                  schedule_free=True, static_hparams=("warmup_steps",)),
    # Recent rules (module docstring); defaults from their papers or, where the paper
    # leaves one open, optax's.
    OptimizerEntry("lion", rules.lion, {"learning_rate": 1e-4, "beta1": 0.9, "beta2": 0.99,
                                  "weight_decay": 1e-3},
                  "Lion (optax.lion): sign of an interpolated momentum, decoupled decay"),
    OptimizerEntry("signum", rules.signum, {"learning_rate": 1e-4, "momentum": 0.9},
                  "Signum (optax.signum): sign of an EMA of gradients"),
    OptimizerEntry("adopt", rules.adopt, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.9999,
                                    "epsilon": 1e-6},
                  "ADOPT (optax.contrib.adopt): momentum of gradients normalised by the "
                  "previous second moment, clipped"),
    OptimizerEntry("ademamix", rules.ademamix, {**_ADAM_DEFAULTS, "beta3": 0.9999, "alpha": 5.0,
                                          "weight_decay": 0.0},
                  "AdEMAMix (optax.contrib.ademamix): AdamW plus a slow EMA of gradients"),
    OptimizerEntry("muon", rules.muon, {"learning_rate": 0.02, "momentum": 0.95, "beta1": 0.9,
                                  "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0},
                  "Muon (optax.contrib.muon): orthogonalised momentum on 2-D params, "
                  "NAdamW on the rest"),
    OptimizerEntry("prodigy", rules.prodigy, {"learning_rate": 1.0, "beta1": 0.9, "beta2": 0.999,
                                        "epsilon": 1e-8, "weight_decay": 0.0,
                                        "estim_lr0": 1e-6},
                  "Prodigy (optax.contrib.prodigy): Adam with an estimated step size d; "
                  "learning_rate multiplies d"),
    OptimizerEntry("schedule_free_sgd", rules.schedule_free_sgd,
                  {"learning_rate": 1.0, "momentum": 0.9, "weight_decay": 0.0},
                  "schedule-free SGD (optax.contrib); evaluate at its averaged point",
                  schedule_free=True, static_hparams=("warmup_steps",)),
    OptimizerEntry("adafactor", rules.adafactor, {"learning_rate": 1e-2, "beta1": 0.0,
                                            "decay_rate": 0.8, "epsilon": 1e-30},
                  "Adafactor (optax.adafactor): factored second moments, update clipping, "
                  "relative step size"),
    OptimizerEntry("radam", rules.radam, dict(_ADAM_DEFAULTS),
                  "RAdam (optax.radam): Adam with a rectified adaptive step"),
    # More optax / optax.contrib rules (module docstring); defaults from their papers
    # (cited in protocols/presets.py beside their search spaces) or optax's.
    OptimizerEntry("adan", rules.adan, {"learning_rate": 1e-3, "beta1": 0.98, "beta2": 0.92,
                                  "beta3": 0.99, "epsilon": 1e-8, "weight_decay": 0.02},
                  "Adan (optax.adan): Nesterov momentum from gradient differences"),
    OptimizerEntry("cocob", rules.cocob, {"learning_rate": 1.0, "alpha": 100.0, "epsilon": 1e-8,
                                    "weight_decay": 0.0},
                  "COCOB-Backprop (optax.contrib.cocob): coin betting, no step size; "
                  "learning_rate multiplies its step"),
    OptimizerEntry("dadapt_adamw", rules.dadapt_adamw,
                  {"learning_rate": 1.0, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                   "estim_lr0": 1e-6, "weight_decay": 0.0},
                  "D-Adaptation AdamW (optax.contrib.dadapt_adamw): estimated step size d; "
                  "learning_rate multiplies d"),
    OptimizerEntry("dog", rules.dog, {"learning_rate": 1.0, "reps_rel": 1e-6, "epsilon": 1e-8,
                                "weight_decay": 0.0},
                  "DoG (optax.contrib.dog): step = max distance from the start / sqrt(sum "
                  "|g|^2); learning_rate multiplies it"),
    OptimizerEntry("dowg", rules.dowg, {"learning_rate": 1.0, "epsilon": 1e-4, "weight_decay": 0.0},
                  "DoWG (optax.contrib.dowg): distance-weighted gradient sums; "
                  "learning_rate multiplies its step"),
    OptimizerEntry("madgrad", rules.madgrad, {"learning_rate": 1e-2, "momentum": 0.9,
                                        "epsilon": 1e-6, "weight_decay": 0.0},
                  "MADGRAD (optax.contrib.madgrad): dual averaging with a cube-root "
                  "adaptive denominator and momentum by averaging"),
    OptimizerEntry("sign_sgd", rules.sign_sgd, {"learning_rate": 1e-4},
                  "signSGD (optax.sign_sgd): theta -= lr sign(g)"),
    # ACProp's epsilon 1e-8, not optax's 1e-16: its normaliser is the previous step's
    # second moment, so a coordinate whose previous gradient was exactly 0 (a dead ReLU
    # unit) gets g / (sqrt(eps) + eps); at 1e-16 mnist1d_mlp diverges at step 2.
    OptimizerEntry("acprop", rules.acprop, {**_ADAM_DEFAULTS, "weight_decay": 0.0},
                  "ACProp (optax.contrib.acprop): centred second moment, asynchronous "
                  "(previous-step) normaliser"),
    OptimizerEntry("adabelief", rules.adabelief, {**_ADAM_DEFAULTS, "epsilon": 1e-16},
                  "AdaBelief (optax.adabelief): Adam with the variance of g around m"),
    OptimizerEntry("yogi", rules.yogi, {**_ADAM_DEFAULTS, "learning_rate": 1e-2, "epsilon": 1e-3},
                  "Yogi (optax.yogi): additive second-moment update"),
    OptimizerEntry("amsgrad", rules.amsgrad, dict(_ADAM_DEFAULTS),
                  "AMSGrad (optax.amsgrad): Adam with the running max of v"),
    OptimizerEntry("adamax", rules.adamax, {**_ADAM_DEFAULTS, "learning_rate": 2e-3},
                  "AdaMax (optax.adamax): Adam with the infinity norm"),
    OptimizerEntry("novograd", rules.novograd, {"learning_rate": 1e-2, "beta1": 0.95, "beta2": 0.98,
                                          "epsilon": 1e-6, "weight_decay": 0.0},
                  "NovoGrad (optax.novograd): layer-wise second moments"),
    OptimizerEntry("adagrad", rules.adagrad, {"learning_rate": 1e-2, "initial_accumulator": 0.1,
                                        "epsilon": 1e-7},
                  "Adagrad (optax.adagrad): sum of squared gradients"),
    OptimizerEntry("adadelta", rules.adadelta, {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-6,
                                          "weight_decay": 0.0},
                  "Adadelta (optax.adadelta): RMS of past steps over RMS of gradients"),
    OptimizerEntry("fromage", rules.fromage, {"learning_rate": 1e-2, "min_norm": 1e-6},
                  "Fromage (optax.fromage): layer-wise relative steps"),
    # Shampoo and SOAP (bench/preconditioners.py); block_size and precondition_frequency
    # shape the program (static), every other value is a value of it.
    OptimizerEntry("shampoo", rules.shampoo("adam"), _SHAMPOO_DEFAULTS,
                  "Shampoo (Gupta et al. 2018; Anil et al. 2020): blocked Kronecker-factored "
                  "preconditioner, grafted to Adam's step size per block, momentum",
                  static_hparams=_PRECONDITIONER_STATIC),
    OptimizerEntry("shampoo_sgd", rules.shampoo("sgd"),
                  {**{k: v for k, v in _SHAMPOO_DEFAULTS.items() if k != "epsilon"},
                   "learning_rate": 0.1},
                  "Shampoo grafted to SGD's step size (the gradient's norm per block)",
                  static_hparams=_PRECONDITIONER_STATIC),
    OptimizerEntry("soap", rules.soap, {"learning_rate": 3e-3, "beta1": 0.95, "beta2": 0.95,
                                  "epsilon": 1e-8, "weight_decay": 0.0, "block_size": 128,
                                  "precondition_frequency": 10},
                  "SOAP (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's statistics, "
                  "refreshed every precondition_frequency steps",
                  static_hparams=_PRECONDITIONER_STATIC),
    # Kron (bench/kron.py): psgd's defaults (kron_torch / psgd-jax: lr 1e-3, b1 0.9,
    # precond_lr 0.1, precond_init_scale 1.0); its update schedule is psgd's, by step.
    OptimizerEntry("kron", rules.kron, {"learning_rate": 1e-3, "beta1": 0.9,
                                        "weight_decay": 0.0, "preconditioner_lr": 0.1,
                                        "preconditioner_init_scale": 1.0},
                   "Kron (Li 2018; PSGD): Kronecker-factored preconditioner Q^T Q fitted "
                   "on Lie groups of triangular matrices, applied to momentum"),
    # Rules that read the loss (the train step's value / obj_fn): optax.contrib's defaults,
    # but Sophia's learning rate (Adam's scale: its clipped step is at most lr per entry).
    OptimizerEntry("sophia", rules.sophia,
                   {"learning_rate": 1e-3, "beta1": 0.965, "beta2": 0.99, "epsilon": 1e-8,
                    "weight_decay": 1e-4, "gamma": 0.01, "clip_threshold": 1.0,
                    "update_interval": 10},
                   "Sophia (Liu et al. 2023; optax.contrib.sophia): clipped momentum over a "
                   "Hutchinson estimate of the Hessian diagonal, refreshed every "
                   "update_interval steps", static_hparams=("update_interval",)),
    OptimizerEntry("momo", rules.momo, {"learning_rate": 1.0, "momentum": 0.9,
                                        "lower_bound": 0.0, "weight_decay": 0.0},
                   "MoMo (Schaipp et al. 2023; optax.contrib.momo): momentum SGD with a "
                   "Polyak step size from the loss value, capped by learning_rate"),
    OptimizerEntry("momo_adam", rules.momo_adam,
                   {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                    "lower_bound": 0.0, "weight_decay": 0.0},
                   "MoMo-Adam (optax.contrib.momo_adam): Adam's direction with MoMo's "
                   "Polyak step size"),
    # Momentum's defaults; the plateau rule's: PyTorch's and Keras' factor 0.1 and relative
    # threshold 1e-4; the loss is a batch's, so averaged over 20 steps, and 5 such
    # averages (100 steps) without improvement cut the step (PyTorch: 10 epochs).
    OptimizerEntry("momentum_plateau", rules.momentum_plateau,
                   {"learning_rate": 0.1, "momentum": 0.9, "factor": 0.1, "patience": 5,
                    "rtol": 1e-4, "accumulation_size": 20},
                   "heavy-ball momentum, its step cut by factor when the batch loss "
                   "(averaged over accumulation_size steps) has not improved by rtol for "
                   "patience averages (optax.contrib.reduce_on_plateau)",
                   static_hparams=("factor", "rtol")),
    # optax.polyak_sgd's defaults (scaling 1 as learning_rate, cap 1, f_min 0, eps 0).
    OptimizerEntry("polyak_sgd", rules.polyak_sgd,
                   {"learning_rate": 1.0, "max_learning_rate": 1.0, "lower_bound": 0.0,
                    "epsilon": 0.0},
                   "SGD with the stochastic Polyak step size (Loizou et al. 2021, SPS_max; "
                   "optax.polyak_sgd) from the batch loss, capped by max_learning_rate and "
                   "scaled by learning_rate"),
]}


def register(name: str, make: Callable[[optax.Schedule, Mapping[str, Any]],
                                        optax.GradientTransformation],
             defaults: Mapping[str, float], doc: str, **options: Any) -> OptimizerEntry:
  """Add an update rule by name: `make(learning_rate_schedule, hparams)` builds
  it from its hyperparameters (every name in `defaults`, which must include
  learning_rate, plus the schedule's), as the entries above do. Call it from a
  file of your own that your recipe imports (or that bench.train loads with
  --optimizer=FILE.py:NAME); it then works in protocols, studies and packs."""
  if not name or not isinstance(name, str) or ":" in name:
    raise OptimizerError(f"optimizer name must be a non-empty string without ':', got {name!r}")
  if "learning_rate" not in defaults:
    raise OptimizerError(f"optimizer {name!r}: defaults must include learning_rate")
  REGISTRY[name] = OptimizerEntry(name, make, dict(defaults), doc, **options)
  return REGISTRY[name]


def entry(name: str) -> OptimizerEntry:
  if name not in REGISTRY:
    raise OptimizerError(f"unknown optimizer {name!r}; known: {', '.join(REGISTRY)}")
  return REGISTRY[name]


def load(name: str) -> str:
  """'path/to/file.py:NAME' -> NAME after running the file (which registers it);
  a plain name is returned as it is."""
  path, sep, short = name.rpartition(":")
  if not sep or not path.endswith(".py"):
    return name
  try:
    userfiles.load(path, "user_optimizer_")
  except FileNotFoundError:
    raise OptimizerError(f"optimizer file not found: {path}") from None
  entry(short)  # registered by the file, or one clear line
  return short


def resolve_hparams(name: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
  """Defaults filled in, unknown names and bad values rejected (one clear message)."""
  s = entry(name)
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
  for key in ("learning_rate", "estim_lr0"):
    if key in h and isinstance(h[key], (int, float)) and h[key] <= 0:
      bad(key, "must be > 0")
  for key in ("momentum", "beta1", "beta2", "beta3", "rho"):
    if key in h and isinstance(h[key], (int, float)) and not 0 <= h[key] < 1:
      bad(key, "must be in [0, 1)")
  for key in ("epsilon", "weight_decay", "alpha", "min_norm", "initial_accumulator"):
    if key in h and isinstance(h[key], (int, float)) and h[key] < 0:
      bad(key, "must be >= 0")
  for key in ("gamma", "clip_threshold"):
    if key in h and isinstance(h[key], (int, float)) and h[key] <= 0:
      bad(key, "must be > 0")
  for key in ("block_size", "precondition_frequency", "update_interval", "patience",
              "accumulation_size"):
    if key in h and isinstance(h[key], (int, float)) and \
        (h[key] < 1 or int(h[key]) != h[key]):
      bad(key, "must be an integer >= 1")
  for key in ("reps_rel", "matrix_epsilon", "exponent_multiplier", "max_learning_rate"):
    if key in h and isinstance(h[key], (int, float)) and h[key] <= 0:
      bad(key, "must be > 0")
  if name in ("cocob",) and isinstance(h.get("alpha"), (int, float)) and h["alpha"] <= 0:
    bad("alpha", "must be > 0")  # COCOB's reward bound: alpha L_i in its denominator
  if name in ("dowg",) and isinstance(h.get("epsilon"), (int, float)) and h["epsilon"] <= 0:
    bad("epsilon", "must be > 0")  # DoWG's first distance estimate: 0 never moves
  if "preconditioner_lr" in h and isinstance(h["preconditioner_lr"], (int, float)) and \
      not 0 < h["preconditioner_lr"] < 1:
    # Li's normalised step on the group: below 1, so that I - mu E / |E| stays invertible.
    bad("preconditioner_lr", "must be in (0, 1)")
  if "preconditioner_init_scale" in h and \
      isinstance(h["preconditioner_init_scale"], (int, float)) and h["preconditioner_init_scale"] <= 0:
    bad("preconditioner_init_scale", "must be > 0")
  if name == "momentum_plateau":  # optax.contrib.reduce_on_plateau's own ranges
    if isinstance(h["factor"], (int, float)) and not 0 < h["factor"] < 1:
      bad("factor", "must be in (0, 1)")
    if isinstance(h["rtol"], (int, float)) and not 0 < h["rtol"] <= 1:
      bad("rtol", "must be in (0, 1]")
  if "decay_rate" in h and isinstance(h["decay_rate"], (int, float)) and \
      not 0 < h["decay_rate"] <= 1:
    bad("decay_rate", "must be in (0, 1]")
  if name in REGISTRY and REGISTRY[name].schedule_free:
    # x = (y - (1 - b1) z) / b1 at evaluation: b1 = 0 has no averaged point.
    for key in ("momentum", "beta1"):
      if key in h and isinstance(h[key], (int, float)) and not 0 < h[key] < 1:
        bad(key, "must be in (0, 1) for a schedule-free method")


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
  s = entry(name)
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
                                if k == "schedule" or k in entry(name).static_hparams))


def eval_params(name: str, params: Any, opt_state: Any) -> Any:
  """Parameters to evaluate: schedule-free methods evaluate their averaged point."""
  if entry(name).schedule_free:
    return optax.contrib.schedule_free_eval_params(opt_state.inner_state, params)
  return params
