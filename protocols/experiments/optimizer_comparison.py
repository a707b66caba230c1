"""Today's optimizers against the 2019 set, under the same wide protocols.

Scientific: the optimizer, every one with a Choi-style space in
protocols/presets.py: CHOI_OPTIMIZERS + MODERN_OPTIMIZERS (sgd, momentum,
nesterov, rmsprop, adam, nadam, lion, signum, adopt, ademamix, muon, prodigy,
schedule_free_sgd, adafactor, radam), then at cpu and paper scale also
MORE_OPTIMIZERS (the rest of optax / optax.contrib that trains from scratch) and
PRECONDITIONER_OPTIMIZERS (shampoo, shampoo_sgd, soap), LOSS_OPTIMIZERS (sophia,
momo, momo_adam: the rules that read the loss), PSGD_OPTIMIZERS (kron) and
MORE_LOSS_OPTIMIZERS (momentum_plateau, polyak_sgd: more that read the loss), each
list after the last (earlier studies keep their place). Varied: the protocol, `choi_lr`
(learning rate only) and `choi_all` (every hyperparameter, linear decay): the
claim of a speed-up is checked at both. Objective: best validation error (or
loss for the language model). The report and the figures give the ranking per
protocol, the ranking at 10%..100% of the step budget (retrospective
selection) and the ranking by steps vs by seconds to the workload's goal.
`metric` (error, or loss for the language models) is the objective's.

  --config=protocols/experiments/optimizer_comparison.py:<workload>,<scale>

Workloads: mnist1d_mlp (the default) and stdlib_lm (the byte-level Transformer,
where Muon and AdEMAMix are meant to matter); any registered one works.
"""
from __future__ import annotations

import ml_collections

from protocols import presets
from protocols.experiments import base_config, optional, parse_args, study

OPTIMIZERS = presets.CHOI_OPTIMIZERS + presets.MODERN_OPTIMIZERS
ALL_OPTIMIZERS = (OPTIMIZERS + presets.MORE_OPTIMIZERS + presets.PRECONDITIONER_OPTIMIZERS
                  + presets.LOSS_OPTIMIZERS + presets.PSGD_OPTIMIZERS
                  + presets.MORE_LOSS_OPTIMIZERS)
_SCALES = {
    "smoke": dict(optimizers=("sgd", "adam", "lion", "muon"), protocols=("choi_lr", "choi_all"),
                  num_trials=2, train_steps=20, eval_every=10),
    # 40 optimizers x 2 protocols x 16 trials; with stdlib_lm's below, about 50 minutes on
    # 2 CPU cores for both workloads (scripts/optimizer_comparison.sh).
    "cpu": dict(optimizers=ALL_OPTIMIZERS, protocols=("choi_lr", "choi_all"), num_trials=16,
                train_steps=600, eval_every=50),
    # Choi et al.: up to 100 trials per space; step budgets: the workload's default.
    "paper": dict(optimizers=ALL_OPTIMIZERS, protocols=("choi_lr", "choi_lr_momentum", "choi_all"),
                  num_trials=100, train_steps=None, eval_every=None),
}
# The objective's metric: validation error, or loss where the workload has no error
# (named here: a recipe imports no workload code, tests/test_layering.py).
_LOSS_WORKLOADS = ("stdlib_lm", "shakespeare_lm", "lm1b_transformer")
# The language model's steps cost ~60x the MLP's on a CPU (43 ms at batch 32): at cpu
# scale the 2019 baselines and the rules claimed to matter for language models, with the
# learning rate tuned (8 trials of a 1-D search; the 7-D `choi_all` needs far more).
# Shampoo and Kron come last (Shampoo's step hung jaxlib 0.10's CPU runtime on this
# model until its eigendecompositions ran one at a time: bench.preconditioners.in_turn).
_WORKLOAD_SCALES = {("stdlib_lm", "cpu"): dict(
    optimizers=("nesterov", "adam", "lion", "ademamix", "muon", "adopt", "adan", "soap",
                "shampoo", "kron"),
    protocols=("choi_lr",), num_trials=8, train_steps=400, eval_every=25)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  workload, scale = parse_args(arg, ("mnist1d_mlp", "cpu"))
  c = base_config("optimizer_comparison", workload, scale)
  fields = {**_SCALES[scale], **_WORKLOAD_SCALES.get((workload, scale), {})}
  for name in ("train_steps", "eval_every"):   # None: the workload's default
    optional(c, name, int, fields.pop(name))
  c.update(fields)
  optional(c, "batch_size", int)     # None: the workload's default
  c.metric = "loss" if workload in _LOSS_WORKLOADS else "error"
  return c


def studies(config: ml_collections.ConfigDict) -> list[dict]:
  if config.num_trials < 1:
    raise ValueError(f"num_trials must be >= 1, got {config.num_trials}")
  out = []
  for name in config.protocols:
    for optimizer in config.optimizers:
      protocol = presets.get(name, optimizer=optimizer, num_trials=config.num_trials,
                             train_steps=config.train_steps, eval_every=config.eval_every,
                             metric=config.metric)
      sci = {"optimizer": optimizer}
      if config.batch_size is not None:
        sci["batch_size"] = int(config.batch_size)
      for i in range(config.num_studies):
        out.append(study(config.workload, protocol, sci, config.study_seed + i))
  return out
