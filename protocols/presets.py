"""Named tuning protocols from the literature.

Each preset is a function returning a complete protocol ConfigDict; its docstring says
where it comes from and which choices are ours. All take keyword overrides of the budget
(num_trials, train_steps, eval_every) and of seeds.study_seed.

  get('choi_all', optimizer='adam', num_trials=50)
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import ml_collections

from bench import optimizers
from protocols import protocol as protocol_lib
from protocols import search_space as ss
from protocols.search_space import ProtocolError

_LINEAR_DECAY_FACTOR = (1e-3, 1.0)       # 1.0 = constant: contains the constant schedule
_DECAY_STEPS_FRACTION = (0.5, 1.0)


def shallue(optimizer: str = "nesterov", *, num_trials: int = 100,
            train_steps: int | None = None, eval_every: int | None = None,
            study_seed: int = 0, sampler: str = "quasi_random",
            effective_learning_rate: bool = False) -> ml_collections.ConfigDict:
  """Shallue et al. 2018, "Measuring the Effects of Data Parallelism on Neural Network
  Training" (JMLR 20(112)): quasi-random search, 100 trials per batch size, Nesterov
  momentum (also plain momentum / SGD), learning rate log-uniform, momentum with 1 - momentum
  log-uniform, learning rate decayed linearly to a searched fraction over a searched number
  of steps; objective steps to result on the validation error goal.

  Ranges are Shallue et al.'s published ones, from the study.json example of their released
  data (google-research/google-research batch_science/README.md, ImageNet ResNet-50,
  Nesterov): learning_rate log-uniform in [1e-4, 10]; momentum in [0.9, 0.9999] with
  1 - momentum log-uniform ("REVERSE_LOG_SCALE"); end_learning_rate_factor (our
  decay_factor) log-uniform in [1e-4, 0.1]; learning_rate_decay_steps in [300k, 600k] of
  600k train steps, i.e. decay over a fraction [0.5, 1.0] of train_steps. Their per-workload
  spaces (one study.json per workload and batch size in the 800 MB data release) may be
  narrower; these are the ranges we could verify, used for every workload. With
  effective_learning_rate=True the search is over elr = lr / (1 - momentum) in [1e-3, 1e5]
  (Shallue's plotting variable; the image of the ranges above) and
  learning_rate = elr * (1 - momentum) is what the optimizer gets.
  """
  if optimizer not in ("nesterov", "momentum", "sgd"):
    raise ProtocolError(f"shallue: optimizer must be nesterov, momentum or sgd, got {optimizer!r}")
  space = {
      "optimizer": ss.fixed(optimizer),
      "learning_rate": ss.log(1e-4, 10.0),
      "schedule": ss.fixed("linear_decay"),
      "decay_factor": ss.log(1e-4, 0.1),
      "decay_steps_fraction": ss.linear(*_DECAY_STEPS_FRACTION),
  }
  if optimizer != "sgd":
    space["momentum"] = ss.log1m(0.9, 0.9999)
    if effective_learning_rate:
      del space["learning_rate"]
      space["effective_learning_rate"] = ss.log(1e-3, 1e5, reparam="effective_learning_rate")
  return protocol_lib.make(
      "shallue", space, sampler=sampler, num_trials=num_trials, train_steps=train_steps,
      eval_every=eval_every, objective="steps_to_goal", metric="error", study_seed=study_seed,
      source="Shallue et al. 2018 (JMLR 20(112)): quasi-random lr, 1-momentum and "
             "linear decay; ranges from their released study.json example")


CHOI_OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "nadam")
# Recent rules (bench.optimizers) with Choi-style nested spaces of their own (_MODERN_SPACES).
MODERN_OPTIMIZERS = ("lion", "signum", "adopt", "ademamix", "muon", "prodigy",
                     "schedule_free_sgd", "adafactor", "radam")
# More rules of optax / optax.contrib (issue 21), spaces in _more_entries.
MORE_OPTIMIZERS = ("adan", "cocob", "dadapt_adamw", "dog", "dowg", "madgrad", "sign_sgd",
                   "acprop", "adabelief", "yogi", "amsgrad", "adamax", "novograd", "adagrad",
                   "adadelta", "fromage")
# Shampoo and SOAP (bench/preconditioners.py), spaces in _more_entries.
PRECONDITIONER_OPTIMIZERS = ("shampoo", "shampoo_sgd", "soap")
# Rules that read the loss (the train step's value / obj_fn), spaces in _more_entries.
LOSS_OPTIMIZERS = ("sophia", "momo", "momo_adam")
# Kron / PSGD (bench/kron.py), space in _more_entries.
PSGD_OPTIMIZERS = ("kron",)
# More rules that read the loss (the train step's value), spaces in _more_entries; a list
# of their own after Kron's, so the comparison's earlier studies keep their place.
MORE_LOSS_OPTIMIZERS = ("momentum_plateau", "polyak_sgd")
CHOI_LEVELS = ("lr", "lr_momentum", "all")


def choi(optimizer: str, level: str, *, num_trials: int = 100,
         train_steps: int | None = None, eval_every: int | None = None,
         study_seed: int = 0, sampler: str = "quasi_random",
         epsilon_range: tuple[float, float] = (1e-10, 1e10), metric: str = "error"
         ) -> ml_collections.ConfigDict:
  """Choi et al. 2019, "On Empirical Comparisons of Optimizers for Deep Learning"
  (arXiv:1910.05446): the more hyperparameters are tuned, the more the rankings follow the
  inclusions SGD <= momentum <= RMSProp / Adam, SGD <= Nesterov <= NAdam. Three nested levels,
  each containing the previous level's point:

    lr           learning rate only; momentum 0.9 (RMSProp: 0.0), beta1 0.9, beta2 0.999,
                 epsilon 1e-8 (RMSProp: 1e-10, inside the sqrt), rho 0.9; constant
                 schedule (the Wilson et al. 2017 / DeepOBS style of comparison)
    lr_momentum  + momentum / beta1 with 1 - x log-uniform in [1e-3, 1] (x in [0, 0.999])
    all          + beta2 / rho in [0, 0.9999] (log1m), epsilon log-uniform over
                 `epsilon_range` (default 1e-10..1e10, "very wide"), linear decay with
                 decay_factor in [1e-3, 1] (1 = constant) over [0.5, 1] of train_steps

  Learning rate: log-uniform in [1e-4, 10] for sgd / momentum / nesterov; [1e-5, 1] for
  the adaptive methods at the first two levels and [1e-5, 100] at 'all' (a large epsilon
  needs a large learning rate). Best trial by validation `metric` (error; 'loss' for
  language models), its test value reported.
  Ranges are generic, not the paper's per-workload refined spaces (its Appendix D).

  The MODERN_OPTIMIZERS (lion, signum, adopt, ademamix, muon, prodigy, schedule_free_sgd,
  adafactor, radam) and MORE_OPTIMIZERS (the rest of optax / optax.contrib that trains
  from scratch) get spaces built the same way (_modern_entries, _more_entries: where each
  range comes from is noted there); `epsilon_range` applies to those whose epsilon plays
  Adam's role.
  """
  added = (MODERN_OPTIMIZERS + MORE_OPTIMIZERS + PRECONDITIONER_OPTIMIZERS + LOSS_OPTIMIZERS
           + PSGD_OPTIMIZERS + MORE_LOSS_OPTIMIZERS)
  known = CHOI_OPTIMIZERS + added
  if optimizer not in known:
    raise ProtocolError(f"choi: optimizer must be one of {', '.join(known)}, "
                        f"got {optimizer!r}")
  if level not in CHOI_LEVELS:
    raise ProtocolError(f"choi: level must be one of {', '.join(CHOI_LEVELS)}, got {level!r}")
  if optimizer in added:
    space = _modern_space(optimizer, CHOI_LEVELS.index(level), epsilon_range)
  else:
    space = _choi_space(optimizer, CHOI_LEVELS.index(level), epsilon_range)
  return protocol_lib.make(
      f"choi_{level}", space, sampler=sampler, num_trials=num_trials, train_steps=train_steps,
      eval_every=eval_every, objective="best_validation", metric=metric,
      study_seed=study_seed,
      source=f"Choi et al. 2019 (arXiv:1910.05446): nested search space '{level}'; "
             "generic ranges ours")


def _choi_space(optimizer: str, depth: int, epsilon_range: tuple[float, float]
                ) -> dict[str, Any]:
  """depth 0 = lr, 1 = lr_momentum, 2 = all."""
  adaptive = optimizer in ("rmsprop", "adam", "nadam")
  if not adaptive:
    lr = (1e-4, 10.0)
  else:
    lr = (1e-5, 100.0) if depth == 2 else (1e-5, 1.0)
  space = {"optimizer": ss.fixed(optimizer), "learning_rate": ss.log(*lr)}
  defaults = optimizers.entry(optimizer).defaults  # below its level: the rule's default

  def tuned(level, name, param):
    space[name] = param if depth >= level else ss.fixed(defaults[name])

  if optimizer in ("momentum", "nesterov"):
    tuned(1, "momentum", ss.log1m(0.0, 0.999))
  if optimizer == "rmsprop":
    tuned(1, "momentum", ss.log1m(0.0, 0.999))
    tuned(2, "rho", ss.log1m(0.0, 0.9999))
    tuned(2, "epsilon", ss.log(*epsilon_range))
  if optimizer in ("adam", "nadam"):
    tuned(1, "beta1", ss.log1m(0.0, 0.999))
    tuned(2, "beta2", ss.log1m(0.0, 0.9999))
    tuned(2, "epsilon", ss.log(*epsilon_range))
  return _with_schedule(space, decay=depth == 2)


def _with_schedule(space: dict[str, Any], decay: bool) -> dict[str, Any]:
  """Choi's 'all' level searches a linear decay (1 = constant included); the
  lower levels keep the learning rate constant."""
  if decay:
    space["schedule"] = ss.fixed("linear_decay")
    space["decay_factor"] = ss.log(*_LINEAR_DECAY_FACTOR)
    space["decay_steps_fraction"] = ss.linear(*_DECAY_STEPS_FRACTION)
  else:
    space["schedule"] = ss.fixed("constant")
  return space


# Choi-style spaces of the recent rules (_modern_entries). Each entry: name -> (level,
# spec) with level 0 = lr, 1 = lr_momentum, 2 = all; below its level a hyperparameter is
# fixed at its default (bench.optimizers' defaults, from the rule's paper or optax), so each level holds
# the previous one's point. As in Choi et al. 2019 (their Appendix D style): the learning
# rate log-uniform over several decades at every level, the momentum-like constant
# (momentum / beta1) at lr_momentum with 1 - x log-uniform in [1e-3, 1], second-moment
# constants (1 - x in [1e-4, 1]), epsilon and weight decay at 'all'; the decay schedule
# at 'all' is _choi_space's (linear decay, decay_factor 1 = constant), except for
# schedule-free SGD, whose averaging replaces it. Ranges are ours where no citation says
# otherwise; they are wide on purpose (a range that excludes a rule's best point is the
# failure mode Choi et al. describe).
#
# Weight decay is searched at 'all' log-uniform in _WEIGHT_DECAY; where a rule's default
# is 0 the lower levels hold 0, which that range holds only in the limit (its low end,
# 1e-6 of the learning rate per step, changes nothing measurable in these budgets).
_WEIGHT_DECAY = (1e-6, 1.0)
_LR_ADAPTIVE = ((1e-5, 1.0), (1e-5, 100.0))   # Choi's adaptive range; 'all': large eps
_BETA1 = (1, ss.log1m(0.0, 0.999))             # Choi's momentum / beta1 range
_BETA2 = (2, ss.log1m(0.0, 0.9999))            # Choi's beta2 / rho range


def _modern_entries(optimizer: str, epsilon_range: tuple[float, float]
                    ) -> tuple[tuple[tuple[float, float], tuple[float, float]],
                               dict[str, tuple[int, Any]]]:
  """((lr range at levels 0-1, lr range at 'all'), {name: (level, spec)})."""
  eps = (2, ss.log(*epsilon_range))
  wd = (2, ss.log(*_WEIGHT_DECAY))
  if optimizer == "lion":
    # Chen et al. 2023 (arXiv:2302.06675) sec. 5: beta1 0.9, beta2 0.99; its lr 3-10x
    # below AdamW's and its decoupled weight decay 3-10x above: Choi's adaptive lr range
    # a decade lower, _WEIGHT_DECAY a decade higher. No epsilon (a sign update).
    return ((1e-6, 1e-1), (1e-6, 1e-1)), {"beta1": _BETA1, "beta2": _BETA2, "weight_decay":
                                          (2, ss.log(1e-5, 10.0))}
  if optimizer == "signum":
    # Bernstein et al. 2018 (arXiv:1802.04434): momentum 0.9; a sign update of size lr
    # per coordinate, as lion's.
    return ((1e-6, 1e-1), (1e-6, 1e-1)), {"momentum": _BETA1}
  if optimizer in ("adopt", "radam"):
    # Taniguchi et al. 2024 (arXiv:2411.02853): beta2 0.9999, eps 1e-6; Liu et al. 2020
    # (arXiv:1908.03265): Adam's. Both Adam-like: Choi's adam space.
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "epsilon": eps}
  if optimizer == "ademamix":
    # Pagliardini et al. 2024 (arXiv:2409.03137): beta3 0.999-0.9999 (larger for longer
    # runs: 1 - beta3 in [1e-5, 1e-1] here), alpha 5 (they use 4-10; log [0.1, 100] here).
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "epsilon": eps,
                          "beta3": (2, ss.log1m(0.9, 0.99999)),
                          "alpha": (2, ss.log(0.1, 100.0)), "weight_decay": wd}
  if optimizer == "muon":
    # Jordan et al. 2024 (kellerjordan.github.io/posts/muon): lr 0.02, momentum 0.95;
    # an orthogonalised step has unit spectral norm, so the range is centred on 1e-2.
    # beta1 / beta2 are the NAdamW part's; epsilon (a numerical guard in the
    # Newton-Schulz normalisation as well) is not searched.
    return ((1e-5, 1.0), (1e-5, 1.0)), {"momentum": _BETA1, "beta1": (2, ss.log1m(0.0, 0.999)),
                                        "beta2": _BETA2, "weight_decay": wd}
  if optimizer == "prodigy":
    # Mishchenko & Defazio 2024 (arXiv:2306.06101): learning_rate a multiplier of the
    # estimated step, 1.0 throughout their experiments: two decades either side. eps sits
    # on d * sqrt(v): beyond ~1e-2 the step stops adapting, which no multiplier in range
    # makes up for, so its range is narrower than Choi's.
    return ((1e-2, 1e2), (1e-2, 1e2)), {"beta1": _BETA1, "beta2": _BETA2,
                                        "epsilon": (2, ss.log(1e-10, 1e-2)),
                                        "weight_decay": wd}
  if optimizer == "schedule_free_sgd":
    # Defazio et al. 2024 (arXiv:2405.15682): momentum 0.9 (0.95 and 0.98 also work);
    # SGD-SF takes larger learning rates than scheduled SGD: Choi's SGD range a decade
    # higher. momentum must stay > 0 (its evaluation point divides by it).
    return ((1e-4, 1e2), (1e-4, 1e2)), {"momentum": (1, ss.log1m(0.5, 0.999)),
                                        "weight_decay": wd}
  if optimizer == "adafactor":
    # Shazeer & Stern 2018 (arXiv:1804.04235): relative step 1e-2 of RMS(theta), no
    # momentum (beta1 0, searched like Choi's beta1 from 0), decay_rate 0.8 (they compare
    # 0.5-1.0), eps1 1e-30 added to g^2 (so its range is in squared units, up to 1e-2).
    return _LR_ADAPTIVE, {"beta1": _BETA1, "decay_rate": (2, ss.linear(0.5, 1.0)),
                          "epsilon": (2, ss.log(1e-30, 1e-2))}
  return _more_entries(optimizer, epsilon_range)


# Step-size multipliers of the parameter-free rules (their step is estimated; 1.0 is the
# papers' setting): two decades either side, as prodigy's.
_LR_MULTIPLIER = ((1e-2, 1e2), (1e-2, 1e2))


def _more_entries(optimizer: str, epsilon_range: tuple[float, float]
                  ) -> tuple[tuple[tuple[float, float], tuple[float, float]],
                             dict[str, tuple[int, Any]]]:
  """_modern_entries for MORE_OPTIMIZERS (the same conventions and levels)."""
  eps = (2, ss.log(*epsilon_range))
  wd = (2, ss.log(*_WEIGHT_DECAY))
  if optimizer == "adan":
    # Xie et al. 2022 (arXiv:2208.06677) Table 12 / optax: beta1 0.98, beta2 0.92, beta3
    # 0.99 (1 - their 0.02, 0.08, 0.01), weight decay 0.02, Adam-scale learning rates:
    # Choi's adam space; beta2 (the gradient-difference EMA) with the second moments.
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "beta3": _BETA2,
                          "epsilon": eps, "weight_decay": wd}
  if optimizer == "cocob":
    # Orabona & Tommasi 2017 (arXiv:1705.07795) sec. 5: alpha = 100 in every experiment
    # ("no learning rate"); here 1 to 1e4 at 'all'; epsilon is a numerical guard.
    return _LR_MULTIPLIER, {"alpha": (2, ss.log(1.0, 1e4)), "weight_decay": wd}
  if optimizer == "dadapt_adamw":
    # Defazio & Mishchenko 2023 (arXiv:2301.07733): Adam's betas, learning_rate 1.0 a
    # multiplier of d; epsilon bounded as prodigy's (it sits on d sqrt(v) as well).
    return _LR_MULTIPLIER, {"beta1": _BETA1, "beta2": _BETA2,
                            "epsilon": (2, ss.log(1e-10, 1e-2)), "weight_decay": wd}
  if optimizer == "dog":
    # Ivgi et al. 2023 (arXiv:2302.12022) sec. 4: r_eps = 1e-6 (1 + |x_0|), results
    # insensitive to it over several decades: 1e-8..1e-2 at 'all'.
    return _LR_MULTIPLIER, {"reps_rel": (2, ss.log(1e-8, 1e-2)), "weight_decay": wd}
  if optimizer == "dowg":
    # Khaled et al. 2023 (arXiv:2305.16284): the first distance estimate (optax: epsilon,
    # 1e-4), searched over 1e-8..1 at 'all'.
    return _LR_MULTIPLIER, {"epsilon": (2, ss.log(1e-8, 1.0)), "weight_decay": wd}
  if optimizer == "madgrad":
    # Defazio & Jelassi 2021 (arXiv:2101.11075): momentum 0.9, eps 1e-6, learning rates
    # on SGD's scale (1e-3..1 in their sweeps): Choi's SGD range.
    return ((1e-4, 10.0), (1e-4, 10.0)), {"momentum": _BETA1, "epsilon": eps,
                                          "weight_decay": wd}
  if optimizer == "sign_sgd":
    # Bernstein et al. 2018 (arXiv:1802.04434): signum without momentum; lion's range.
    return ((1e-6, 1e-1), (1e-6, 1e-1)), {}
  if optimizer in ("acprop", "adabelief"):
    # Zhuang et al. 2020 (arXiv:2010.07468) / 2021 (arXiv:2110.05454): Adam's betas,
    # epsilon 1e-16 added to the centred second moment: Choi's adam space with the
    # epsilon range reaching down to 1e-20.
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2,
                          "epsilon": (2, ss.log(1e-20, epsilon_range[1])),
                          **({"weight_decay": wd} if optimizer == "acprop" else {})}
  if optimizer in ("yogi", "amsgrad", "adamax"):
    # Zaheer et al. 2018 (NeurIPS): lr 1e-2, eps 1e-3; Reddi et al. 2018 (ICLR): Adam's;
    # Kingma & Ba 2015 (sec. 7.1): AdaMax lr 2e-3. Adam-like: Choi's adam space.
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "epsilon": eps}
  if optimizer == "novograd":
    # Ginsburg et al. 2019 (arXiv:1905.11286): beta1 0.95, beta2 0.98, lr 1e-2 (ResNet-50):
    # Choi's adam space (its layer-wise normalisation is Adam-like in scale).
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "epsilon": eps,
                          "weight_decay": wd}
  if optimizer == "adagrad":
    # Duchi et al. 2011 (JMLR 12): no momentum; the initial accumulator (0.1, TensorFlow's
    # default) and epsilon at 'all' (1e-10..10 for the accumulator, in squared-gradient
    # units).
    return _LR_ADAPTIVE, {"initial_accumulator": (2, ss.log(1e-10, 10.0)), "epsilon": eps}
  if optimizer == "adadelta":
    # Zeiler 2012 (arXiv:1212.5701) sec. 4: rho 0.95, eps 1e-6, no learning rate (1.0):
    # a multiplier range; eps sets the first steps' size (sqrt(eps) / rms(g)): 1e-10..1.
    return _LR_MULTIPLIER, {"rho": _BETA2,
                            "epsilon": (2, ss.log(1e-10, 1.0)), "weight_decay": wd}
  if optimizer == "fromage":
    # Bernstein et al. 2020 (arXiv:2002.03432): a relative step, lr 1e-2 "works well
    # across tasks": 1e-4..1. min_norm is a numerical guard, not searched.
    return ((1e-4, 1.0), (1e-4, 1.0)), {}
  if optimizer in ("shampoo", "shampoo_sgd"):
    # Gupta et al. 2018 / Anil et al. 2020: grafting gives Shampoo the step size of the
    # rule it is grafted to, so Choi's adam (Adam graft) or SGD (SGD graft) learning
    # rates; beta1 its momentum, beta2 its statistics' and the graft's EMA; the ridge
    # relative to the largest eigenvalue 1e-12..1e-1 and the exponent multiplier 0.25..4
    # (-1/16 to -1 per side of a matrix; Anil et al. report -1/4 and -1/2 working) at
    # 'all'. block_size and precondition_frequency shape the program: held at defaults.
    lrs = _LR_ADAPTIVE if optimizer == "shampoo" else ((1e-4, 10.0), (1e-4, 10.0))
    graft = {"epsilon": eps} if optimizer == "shampoo" else {}
    return lrs, {"beta1": _BETA1, "beta2": _BETA2, **graft, "weight_decay": wd,
                 "matrix_epsilon": (2, ss.log(1e-12, 1e-1)),
                 "exponent_multiplier": (2, ss.log(0.25, 4.0))}
  if optimizer == "soap":
    # Vyas et al. 2024 (arXiv:2409.11321): lr 3e-3, betas (0.95, 0.95), frequency 10; Adam
    # in a rotated basis: Choi's adam space. precondition_frequency and block_size are
    # held at defaults (they shape the program).
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "epsilon": eps,
                          "weight_decay": wd}
  if optimizer == "sophia":
    # Liu et al. 2023 (arXiv:2305.14342) sec. 3: betas (0.96, 0.99), gamma (their rho)
    # 0.01-0.05 tuned, update interval 10, Adam-scale learning rates: Choi's adam space,
    # gamma 1e-3..1 at 'all'. clip_threshold (1) is the method, update_interval shapes the
    # program: both held at defaults.
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "epsilon": eps,
                          "weight_decay": wd, "gamma": (2, ss.log(1e-3, 1.0))}
  if optimizer == "momo":
    # Schaipp et al. 2023 (arXiv:2305.07583) sec. 6: learning_rate caps the Polyak step and
    # is swept over 1e-2..1e2 (robust over two decades either side of 1): a multiplier
    # range; momentum 0.9. lower_bound 0 (a loss's infimum) is held.
    return _LR_MULTIPLIER, {"momentum": _BETA1, "weight_decay": wd}
  if optimizer == "momo_adam":
    # Schaipp et al. 2023: Adam's direction and betas, learning rates on Adam's scale
    # (1e-2 default): Choi's adam space.
    return _LR_ADAPTIVE, {"beta1": _BETA1, "beta2": _BETA2, "epsilon": eps,
                          "weight_decay": wd}
  if optimizer == "kron":
    # Li 2018 (arXiv:1809.10232) and psgd_torch's Kron: lr 1e-3 (its step is whitened and
    # clipped to RMS 1.1, Adam's scale: Choi's adam space), momentum beta1 0.9; the
    # preconditioner's normalised step 0.1 (Li: 0.01-0.1 work), 1e-2..0.5 at 'all' (it
    # must stay below 1); the initial scale of Q (psgd sets it from the first gradients
    # when unset, which spans decades) 1e-2..1e2 at 'all'.
    return _LR_ADAPTIVE, {"beta1": _BETA1, "weight_decay": wd,
                          "preconditioner_lr": (2, ss.log(1e-2, 0.5)),
                          "preconditioner_init_scale": (2, ss.log(1e-2, 1e2))}
  if optimizer == "momentum_plateau":
    # Choi's momentum space; at 'all' also the patience, 1..100 averages (PyTorch's and
    # Keras' default 10 epochs; He et al. 2016 cut by 10 at plateaus). factor (0.1: He et
    # al., PyTorch, Keras) and rtol (1e-4: PyTorch) shape the program (optax checks them
    # when it builds the rule), accumulation_size (20 steps) sets with patience how
    # long a plateau is: held at defaults.
    return ((1e-4, 10.0), (1e-4, 10.0)), {"momentum": _BETA1,
                                          "patience": (2, ss.integer(1, 100, log=True))}
  if optimizer == "polyak_sgd":
    # Loizou et al. 2021 (AISTATS, arXiv:2002.10542): the Polyak step itself sets the scale,
    # so learning_rate (optax's scaling, their 1/c: c = 0.2..0.5) is a multiplier range
    # like MoMo's; at 'all' the cap (their gamma_b, optax's default 1) over 1e-2..1e2
    # (ours, two decades either side). lower_bound (0, a loss's infimum) and epsilon (0)
    # are held.
    return _LR_MULTIPLIER, {"max_learning_rate": (2, ss.log(1e-2, 1e2))}
  raise ProtocolError(f"choi: no search space for {optimizer!r}")


def _modern_space(optimizer: str, depth: int, epsilon_range: tuple[float, float]
                  ) -> dict[str, Any]:
  defaults = optimizers.entry(optimizer).defaults
  lrs, entries = _modern_entries(optimizer, epsilon_range)
  space = {"optimizer": ss.fixed(optimizer),
           "learning_rate": ss.log(*(lrs[1] if depth == 2 else lrs[0]))}
  for name, (level, spec) in entries.items():
    space[name] = spec if depth >= level else ss.fixed(defaults[name])
  return _with_schedule(space, decay=depth == 2 and not optimizers.entry(optimizer).schedule_free)


def choi_lr(optimizer: str = "adam", **kwargs: Any) -> ml_collections.ConfigDict:
  """Choi et al. 2019, level 'lr': learning rate only, the rest at common defaults."""
  return choi(optimizer, "lr", **kwargs)


def choi_lr_momentum(optimizer: str = "adam", **kwargs: Any) -> ml_collections.ConfigDict:
  """Choi et al. 2019, level 'lr_momentum': learning rate and momentum / beta1."""
  return choi(optimizer, "lr_momentum", **kwargs)


def choi_all(optimizer: str = "adam", **kwargs: Any) -> ml_collections.ConfigDict:
  """Choi et al. 2019, level 'all': every hyperparameter, wide epsilon, linear decay."""
  return choi(optimizer, "all", **kwargs)


DEEPOBS_LEARNING_RATES = (1e-5, 1e2)
DEEPOBS_GRID_SIZE = 36


def deepobs_baseline(optimizer: str = "sgd", *, metric: str = "error",
                     train_steps: int | None = None, eval_every: int | None = None,
                     study_seed: int = 42, rerun_best_seeds: int = 9
                     ) -> ml_collections.ConfigDict:
  """Schneider et al. 2019, "DeepOBS: A Deep Learning Optimizer Benchmark Suite" (ICLR),
  baselines as released in fsschneider/DeepOBS_Baselines: a grid of 36 log-spaced constant
  learning rates 1e-5..1e2 (10^(-5 + 0.2 k)); momentum fixed 0.99 for 'momentum' (heavy
  ball); Adam at beta1 0.9, beta2 0.999, epsilon 1e-8. The best learning rate is rerun with
  9 extra seeds (43..51 after the grid's 42: 10 seeds in all).

  DeepOBS 1.1 had no validation split and selected on the final test metric (accuracy, or
  loss on loss-only problems: pass metric='loss'); here the selection is on validation.
  """
  if optimizer not in ("sgd", "momentum", "adam"):
    raise ProtocolError(f"deepobs_baseline: optimizer must be sgd, momentum or adam, "
                        f"got {optimizer!r}")
  space = {
      "optimizer": ss.fixed(optimizer),
      "learning_rate": ss.log(*DEEPOBS_LEARNING_RATES),
      "schedule": ss.fixed("constant"),
  }
  if optimizer == "momentum":
    space["momentum"] = ss.fixed(0.99)
  if optimizer == "adam":
    space.update(beta1=ss.fixed(0.9), beta2=ss.fixed(0.999), epsilon=ss.fixed(1e-8))
  return protocol_lib.make(
      "deepobs_baseline", space, sampler="grid", num_per_dim=DEEPOBS_GRID_SIZE,
      num_trials=DEEPOBS_GRID_SIZE, train_steps=train_steps, eval_every=eval_every,
      rerun_best_seeds=rerun_best_seeds, objective="best_validation", metric=metric,
      study_seed=study_seed,
      source="Schneider et al. 2019 (DeepOBS, ICLR) baselines: 36 log-spaced constant lrs "
             "1e-5..1e2, best rerun on seeds 43-51; DeepOBS 1.1 selected on test")


def algoperf_external(optimizer: str = "nadamw", *, num_studies: int = 5, num_trials: int = 5,
                      train_steps: int | None = None, eval_every: int | None = None,
                      study_seed: int = 0, warmup_fraction: float = 0.05
                      ) -> ml_collections.ConfigDict:
  """AlgoPerf external tuning (Dahl et al. 2023, "Benchmarking Neural Network Training
  Algorithms"; mlcommons/algorithmic-efficiency): num_studies studies of num_trials
  quasi-random trials each; per workload, score = median over studies of the fastest
  trial's time to the target (computed by analysis from steps to goal).

  Space of its NAdamW paper baseline (algorithms/paper_baselines/nadamw): learning_rate
  log-uniform [1e-4, 1e-2], 1 - beta1 log-uniform [4e-3, 0.1], beta2 0.999, weight_decay
  log-uniform [5e-3, 1], cosine decay after a linear warmup of 5% of the steps. The warmup
  is set only when train_steps is given (the schedules take warmup_steps, not a fraction).
  Its label smoothing and dropout choices are workload hyperparameters, left out.
  """
  space = {
      "optimizer": ss.fixed(optimizer),
      "learning_rate": ss.log(1e-4, 1e-2),
      "beta1": ss.log1m(0.9, 0.996),
      "beta2": ss.fixed(0.999),
      "epsilon": ss.fixed(1e-8),
      "weight_decay": ss.log(5e-3, 1.0),
      "schedule": ss.fixed("cosine"),
  }
  if train_steps is not None:
    space["warmup_steps"] = ss.fixed(int(round(warmup_fraction * train_steps)))
  return protocol_lib.make(
      "algoperf_external", space, sampler="quasi_random", num_trials=num_trials,
      num_studies=num_studies, train_steps=train_steps, eval_every=eval_every,
      objective="steps_to_goal", metric="error", study_seed=study_seed,
      source="AlgoPerf external tuning (Dahl et al. 2023), NAdamW paper-baseline space; "
             "score = median over studies of fastest time to target")


PRESETS: dict[str, Callable[..., ml_collections.ConfigDict]] = {
    "shallue": shallue,
    "choi_lr": choi_lr,
    "choi_lr_momentum": choi_lr_momentum,
    "choi_all": choi_all,
    "deepobs_baseline": deepobs_baseline,
    "algoperf_external": algoperf_external,
}


def get(name: str, **kwargs: Any) -> ml_collections.ConfigDict:
  """The preset `name` with keyword overrides; bad names or keywords fail in one line."""
  if name not in PRESETS:
    raise ProtocolError(f"unknown protocol preset {name!r}; known: {', '.join(PRESETS)}")
  fn = PRESETS[name]
  target = choi if fn in (choi_lr, choi_lr_momentum, choi_all) else fn
  params = inspect.signature(target).parameters
  bad = sorted(k for k in kwargs if k not in params or k == "level")
  if bad:
    usable = [p for p in params if p != "level"]
    raise ProtocolError(f"preset {name!r} takes no argument {bad[0]!r} "
                        f"(it takes: {', '.join(usable)})")
  return fn(**kwargs)
