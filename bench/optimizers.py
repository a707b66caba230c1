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

Recent rules, each optax's (optax.contrib where marked), with lr_t the schedule:
  lion       c = beta1 m + (1-beta1) g; m = beta2 m + (1-beta2) g;
             theta -= lr_t * (sign(c) + weight_decay * theta)           (Chen et al. 2023)
  signum     m = momentum m + (1-momentum) g;  theta -= lr_t * sign(m)  (Bernstein et al. 2018)
  adopt      v = beta2 v + (1-beta2) g^2 after normalising by the previous v (the first
             step only sets v); m = beta1 m + (1-beta1) clip(g / max(sqrt(v_prev), eps),
             (t-1)^0.25); theta -= lr_t * m                  (contrib; Taniguchi et al. 2024)
  ademamix   fast m1 (beta1) and slow m2 (beta3, not bias-corrected) EMAs, v (beta2);
             theta -= lr_t * ((m1_hat + alpha m2) / (sqrt(v_hat) + eps) + weight_decay theta)
             (contrib; Pagliardini et al. 2024; alpha and beta3 constant, no warmup
             schedulers for them)
  muon       2-D params (Dense kernels, but also token and position embeddings):
             m = momentum m + (1-momentum) g (Nesterov, bias-corrected),
             O = Newton-Schulz-5(m) ~ U V^T, theta -= lr_t * (sqrt(max(1, fan_out/fan_in)) O
             + weight_decay theta); every other param (biases, norms' scales, 4-D conv and
             3-D/4-D attention kernels): NAdamW(beta1, beta2, epsilon, weight_decay) at the
             same lr_t                                   (contrib; Jordan et al. 2024)
  prodigy    m, v EMAs (beta1, beta2) of d g and (d g)^2, d >= estim_lr0 estimated from
             <g, theta_0 - theta> (D-adaptation); b_t = sqrt(1-beta2^t)/(1-beta1^t);
             theta -= lr_t d b_t (m / (sqrt(v) + d eps) + weight_decay theta);
             learning_rate is a multiplier of d (default 1.0)
             (contrib; Mishchenko & Defazio 2024)
  schedule_free_sgd   y = (1-momentum) z + momentum x (params hold y);
             z -= lr (g(y) + weight_decay y); x = (1-c_t) x + c_t z, c_t = lr^2 / sum lr^2;
             evaluated at x; lr constant after warmup_steps (contrib; Defazio et al. 2024)
  adafactor  second moments factored into row and column EMAs for params whose two
             largest dims are both >= 128 (full v otherwise), beta2_t = 1 - t^-decay_rate;
             u = clip_rms(g / sqrt(v + eps), 1); theta -= EMA_beta1(lr_t max(1e-3, RMS(theta)) u)
             (relative step: the paper's 1/sqrt(t) part is the schedule's to give; lr
             inside the momentum buffer; beta1 = 0 is no momentum) (Shazeer & Stern 2018)
  radam      m, v as optax.adam (eps on the corrected sqrt(v_hat)), step scaled by the
             rectification r_t, and momentum SGD (m_hat alone) while rho_t < 5
             (Liu et al. 2020)

More optax / optax.contrib rules that train from scratch, each optax's own (their
papers and search-space ranges cited in protocols/presets.py, _more_entries):
  adan (Xie et al. 2022), cocob (Orabona & Tommasi 2017), dadapt_adamw (Defazio &
  Mishchenko 2023), dog (Ivgi et al. 2023), dowg (Khaled et al. 2023), madgrad (Defazio &
  Jelassi 2021), sign_sgd (Bernstein et al. 2018), acprop (Zhuang et al. 2021), adabelief
  (Zhuang et al. 2020), yogi (Zaheer et al. 2018), amsgrad (Reddi et al. 2018), adamax
  (Kingma & Ba 2015), novograd (Ginsburg et al. 2019), adagrad (Duchi et al. 2011),
  adadelta (Zeiler 2012), fromage (Bernstein et al. 2020). For cocob, dadapt_adamw, dog,
  dowg and adadelta the learning rate is a multiplier of the step they estimate (1.0).
  Left out: sm3 (takes no schedule), rprop and lbfgs (full-batch methods), noisy_sgd
  (its own random key), optimistic_gradient_descent (for games), mechanize and sam
  (wrappers of another rule), galore (low-rank projection for LLM memory).

Not here: sophia (optax.contrib.sophia's update needs `obj_fn`, the loss as a function
of the parameters, for a Hessian-vector product: the train step passes only grads, and
forward-mode through the CPU convolution's custom VJP fails) and PSGD's kron (psgd-jax
0.2.9 imports optax._src.clipping, gone from optax 0.2.8, and chex, undeclared).

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

from bench import preconditioners, schedules


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


def _lion(lr, h):
  return optax.lion(lr, b1=h["beta1"], b2=h["beta2"], weight_decay=h["weight_decay"])


def _signum(lr, h):
  return optax.signum(lr, beta=h["momentum"])


def _adopt(lr, h):
  return optax.contrib.adopt(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def _ademamix(lr, h):
  # Constant alpha and beta3: the paper's warmup schedulers for them (over the whole
  # run) are not used, as optax's defaults do not use them either.
  return optax.contrib.ademamix(lr, b1=h["beta1"], b2=h["beta2"], b3=h["beta3"],
                                alpha=h["alpha"], eps=h["epsilon"],
                                weight_decay=h["weight_decay"])


def _muon(lr, h):
  # optax's split: Newton-Schulz on every leaf with ndim == 2 (x @ W kernels, reduction
  # axis 0, output axis 1), its NAdamW on every other leaf. In this harness's flax trees
  # that puts Dense kernels and also embedding tables (token, position) under Muon, and
  # biases, norm scales, 4-D conv kernels (HWIO) and the LM's 3-D/4-D attention kernels
  # under AdamW. weight_decay applies to both parts (optax's adam part defaults to none).
  return optax.contrib.muon(lr, beta=h["momentum"], eps=h["epsilon"],
                            weight_decay=h["weight_decay"], adam_b1=h["beta1"],
                            adam_b2=h["beta2"], adam_weight_decay=h["weight_decay"])


def _prodigy(lr, h):
  return optax.contrib.prodigy(lr, betas=(h["beta1"], h["beta2"]), eps=h["epsilon"],
                               estim_lr0=h["estim_lr0"], weight_decay=h["weight_decay"])


def _schedule_free_sgd(lr, h):
  # As _schedule_free_adamw: the schedule-free average replaces the decay schedule.
  return optax.contrib.schedule_free_sgd(
      learning_rate=h["learning_rate"], warmup_steps=int(h.get("warmup_steps") or 0) or None,
      b1=h["momentum"], weight_decay=h["weight_decay"])


def _adafactor(lr, h):
  # momentum=beta1 always (an EMA with decay 0 is the identity: beta1 = 0 is the paper's
  # no-momentum rule), so beta1 stays a value of the program.
  return optax.adafactor(lr, decay_rate=h["decay_rate"], momentum=h["beta1"],
                         eps=h["epsilon"])


def _radam(lr, h):
  return optax.radam(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


# ----- more of optax / optax.contrib (module docstring, "More optax rules") -----

def _adan(lr, h):
  return optax.adan(lr, b1=h["beta1"], b2=h["beta2"], b3=h["beta3"], eps=h["epsilon"],
                    weight_decay=h["weight_decay"])


def _cocob(lr, h):
  return optax.contrib.cocob(lr, alpha=h["alpha"], eps=h["epsilon"],
                             weight_decay=h["weight_decay"])


def _dadapt_adamw(lr, h):
  return optax.contrib.dadapt_adamw(lr, betas=(h["beta1"], h["beta2"]), eps=h["epsilon"],
                                    estim_lr0=h["estim_lr0"], weight_decay=h["weight_decay"])


def _dog(lr, h):
  # ('heuristic', reps_rel): the first step's distance r_eps = reps_rel (1 + |x_0|).
  return optax.contrib.dog(lr, init_step=("heuristic", h["reps_rel"]), eps=h["epsilon"],
                           weight_decay=h["weight_decay"])


def _dowg(lr, h):
  # optax's default: the initial squared-distance estimate is epsilon.
  return optax.contrib.dowg(lr, eps=h["epsilon"], weight_decay=h["weight_decay"])


def _madgrad(lr, h):
  return optax.contrib.madgrad(lr, momentum=h["momentum"], eps=h["epsilon"],
                               weight_decay=h["weight_decay"])


def _sign_sgd(lr, h):
  return optax.sign_sgd(lr)


def _acprop(lr, h):
  return optax.contrib.acprop(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                              eps_root=h["epsilon"], weight_decay=h["weight_decay"])


def _adabelief(lr, h):
  return optax.adabelief(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                         eps_root=h["epsilon"])


def _yogi(lr, h):
  return optax.yogi(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def _amsgrad(lr, h):
  return optax.amsgrad(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def _adamax(lr, h):
  return optax.adamax(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def _novograd(lr, h):
  return optax.novograd(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                        weight_decay=h["weight_decay"])


def _adagrad(lr, h):
  return optax.adagrad(lr, initial_accumulator_value=h["initial_accumulator"],
                       eps=h["epsilon"])


def _adadelta(lr, h):
  return optax.adadelta(lr, rho=h["rho"], eps=h["epsilon"], weight_decay=h["weight_decay"])


def _fromage(lr, h):
  return optax.fromage(lr, min_norm=h["min_norm"])


# ----- Shampoo and SOAP (bench/preconditioners.py, written from their papers) -----

def _shampoo(graft):
  def make(lr, h):
    return optax.chain(
        preconditioners.scale_by_shampoo(
            h["beta1"], h["beta2"], h.get("epsilon", 0.0), h["matrix_epsilon"],
            h["exponent_multiplier"], block_size=int(h["block_size"]),
            precondition_frequency=int(h["precondition_frequency"]), graft=graft),
        optax.add_decayed_weights(h["weight_decay"]),
        optax.scale_by_learning_rate(lr))
  return make


def _soap(lr, h):
  return optax.chain(
      preconditioners.scale_by_soap(h["beta1"], h["beta2"], h["epsilon"],
                                    block_size=int(h["block_size"]),
                                    precondition_frequency=int(h["precondition_frequency"])),
      optax.add_decayed_weights(h["weight_decay"]),
      optax.scale_by_learning_rate(lr))


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
# Shampoo: Adam-grafted (Anil et al. 2020's AlgoPerf form) at Adam's defaults; matrix
# ridge 1e-6 of the largest eigenvalue; -1/4 per side of a matrix; preconditioners
# recomputed every 10 steps (SOAP's default frequency; Anil et al. use 1-100s).
_SHAMPOO_DEFAULTS = {**_ADAM_DEFAULTS, "weight_decay": 0.0, "matrix_epsilon": 1e-6,
                     "exponent_multiplier": 1.0, "block_size": 128,
                     "precondition_frequency": 10}
_PRECONDITIONER_STATIC = ("block_size", "precondition_frequency")

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
    # Recent rules (module docstring); defaults from their papers or, where the paper
    # leaves one open, optax's.
    OptimizerSpec("lion", _lion, {"learning_rate": 1e-4, "beta1": 0.9, "beta2": 0.99,
                                  "weight_decay": 1e-3},
                  "Lion (optax.lion): sign of an interpolated momentum, decoupled decay"),
    OptimizerSpec("signum", _signum, {"learning_rate": 1e-4, "momentum": 0.9},
                  "Signum (optax.signum): sign of an EMA of gradients"),
    OptimizerSpec("adopt", _adopt, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.9999,
                                    "epsilon": 1e-6},
                  "ADOPT (optax.contrib.adopt): momentum of gradients normalised by the "
                  "previous second moment, clipped"),
    OptimizerSpec("ademamix", _ademamix, {**_ADAM_DEFAULTS, "beta3": 0.9999, "alpha": 5.0,
                                          "weight_decay": 0.0},
                  "AdEMAMix (optax.contrib.ademamix): AdamW plus a slow EMA of gradients"),
    OptimizerSpec("muon", _muon, {"learning_rate": 0.02, "momentum": 0.95, "beta1": 0.9,
                                  "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0},
                  "Muon (optax.contrib.muon): orthogonalised momentum on 2-D params, "
                  "NAdamW on the rest"),
    OptimizerSpec("prodigy", _prodigy, {"learning_rate": 1.0, "beta1": 0.9, "beta2": 0.999,
                                        "epsilon": 1e-8, "weight_decay": 0.0,
                                        "estim_lr0": 1e-6},
                  "Prodigy (optax.contrib.prodigy): Adam with an estimated step size d; "
                  "learning_rate multiplies d"),
    OptimizerSpec("schedule_free_sgd", _schedule_free_sgd,
                  {"learning_rate": 1.0, "momentum": 0.9, "weight_decay": 0.0},
                  "schedule-free SGD (optax.contrib); evaluate at its averaged point",
                  schedule_free=True, static_hparams=("warmup_steps",)),
    OptimizerSpec("adafactor", _adafactor, {"learning_rate": 1e-2, "beta1": 0.0,
                                            "decay_rate": 0.8, "epsilon": 1e-30},
                  "Adafactor (optax.adafactor): factored second moments, update clipping, "
                  "relative step size"),
    OptimizerSpec("radam", _radam, dict(_ADAM_DEFAULTS),
                  "RAdam (optax.radam): Adam with a rectified adaptive step"),
    # More optax / optax.contrib rules (module docstring); defaults from their papers
    # (cited in protocols/presets.py beside their search spaces) or optax's.
    OptimizerSpec("adan", _adan, {"learning_rate": 1e-3, "beta1": 0.98, "beta2": 0.92,
                                  "beta3": 0.99, "epsilon": 1e-8, "weight_decay": 0.02},
                  "Adan (optax.adan): Nesterov momentum from gradient differences"),
    OptimizerSpec("cocob", _cocob, {"learning_rate": 1.0, "alpha": 100.0, "epsilon": 1e-8,
                                    "weight_decay": 0.0},
                  "COCOB-Backprop (optax.contrib.cocob): coin betting, no step size; "
                  "learning_rate multiplies its step"),
    OptimizerSpec("dadapt_adamw", _dadapt_adamw,
                  {"learning_rate": 1.0, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                   "estim_lr0": 1e-6, "weight_decay": 0.0},
                  "D-Adaptation AdamW (optax.contrib.dadapt_adamw): estimated step size d; "
                  "learning_rate multiplies d"),
    OptimizerSpec("dog", _dog, {"learning_rate": 1.0, "reps_rel": 1e-6, "epsilon": 1e-8,
                                "weight_decay": 0.0},
                  "DoG (optax.contrib.dog): step = max distance from the start / sqrt(sum "
                  "|g|^2); learning_rate multiplies it"),
    OptimizerSpec("dowg", _dowg, {"learning_rate": 1.0, "epsilon": 1e-4, "weight_decay": 0.0},
                  "DoWG (optax.contrib.dowg): distance-weighted gradient sums; "
                  "learning_rate multiplies its step"),
    OptimizerSpec("madgrad", _madgrad, {"learning_rate": 1e-2, "momentum": 0.9,
                                        "epsilon": 1e-6, "weight_decay": 0.0},
                  "MADGRAD (optax.contrib.madgrad): dual averaging with a cube-root "
                  "adaptive denominator and momentum by averaging"),
    OptimizerSpec("sign_sgd", _sign_sgd, {"learning_rate": 1e-4},
                  "signSGD (optax.sign_sgd): theta -= lr sign(g)"),
    # ACProp's epsilon 1e-8, not optax's 1e-16: its normaliser is the previous step's
    # second moment, so a coordinate whose previous gradient was exactly 0 (a dead ReLU
    # unit) gets g / (sqrt(eps) + eps); at 1e-16 mnist1d_mlp diverges at step 2.
    OptimizerSpec("acprop", _acprop, {**_ADAM_DEFAULTS, "weight_decay": 0.0},
                  "ACProp (optax.contrib.acprop): centred second moment, asynchronous "
                  "(previous-step) normaliser"),
    OptimizerSpec("adabelief", _adabelief, {**_ADAM_DEFAULTS, "epsilon": 1e-16},
                  "AdaBelief (optax.adabelief): Adam with the variance of g around m"),
    OptimizerSpec("yogi", _yogi, {**_ADAM_DEFAULTS, "learning_rate": 1e-2, "epsilon": 1e-3},
                  "Yogi (optax.yogi): additive second-moment update"),
    OptimizerSpec("amsgrad", _amsgrad, dict(_ADAM_DEFAULTS),
                  "AMSGrad (optax.amsgrad): Adam with the running max of v"),
    OptimizerSpec("adamax", _adamax, {**_ADAM_DEFAULTS, "learning_rate": 2e-3},
                  "AdaMax (optax.adamax): Adam with the infinity norm"),
    OptimizerSpec("novograd", _novograd, {"learning_rate": 1e-2, "beta1": 0.95, "beta2": 0.98,
                                          "epsilon": 1e-6, "weight_decay": 0.0},
                  "NovoGrad (optax.novograd): layer-wise second moments"),
    OptimizerSpec("adagrad", _adagrad, {"learning_rate": 1e-2, "initial_accumulator": 0.1,
                                        "epsilon": 1e-7},
                  "Adagrad (optax.adagrad): sum of squared gradients"),
    OptimizerSpec("adadelta", _adadelta, {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-6,
                                          "weight_decay": 0.0},
                  "Adadelta (optax.adadelta): RMS of past steps over RMS of gradients"),
    OptimizerSpec("fromage", _fromage, {"learning_rate": 1e-2, "min_norm": 1e-6},
                  "Fromage (optax.fromage): layer-wise relative steps"),
    # Shampoo and SOAP (bench/preconditioners.py); block_size and precondition_frequency
    # shape the program (static), every other value is a value of it.
    OptimizerSpec("shampoo", _shampoo("adam"), _SHAMPOO_DEFAULTS,
                  "Shampoo (Gupta et al. 2018; Anil et al. 2020): blocked Kronecker-factored "
                  "preconditioner, grafted to Adam's step size per block, momentum",
                  static_hparams=_PRECONDITIONER_STATIC),
    OptimizerSpec("shampoo_sgd", _shampoo("sgd"),
                  {**{k: v for k, v in _SHAMPOO_DEFAULTS.items() if k != "epsilon"},
                   "learning_rate": 0.1},
                  "Shampoo grafted to SGD's step size (the gradient's norm per block)",
                  static_hparams=_PRECONDITIONER_STATIC),
    OptimizerSpec("soap", _soap, {"learning_rate": 3e-3, "beta1": 0.95, "beta2": 0.95,
                                  "epsilon": 1e-8, "weight_decay": 0.0, "block_size": 128,
                                  "precondition_frequency": 10},
                  "SOAP (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's statistics, "
                  "refreshed every precondition_frequency steps",
                  static_hparams=_PRECONDITIONER_STATIC),
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
  for key in ("learning_rate", "estim_lr0"):
    if key in h and isinstance(h[key], (int, float)) and h[key] <= 0:
      bad(key, "must be > 0")
  for key in ("momentum", "beta1", "beta2", "beta3", "rho"):
    if key in h and isinstance(h[key], (int, float)) and not 0 <= h[key] < 1:
      bad(key, "must be in [0, 1)")
  for key in ("epsilon", "weight_decay", "alpha", "min_norm", "initial_accumulator"):
    if key in h and isinstance(h[key], (int, float)) and h[key] < 0:
      bad(key, "must be >= 0")
  for key in ("block_size", "precondition_frequency"):
    if key in h and isinstance(h[key], (int, float)) and \
        (h[key] < 1 or int(h[key]) != h[key]):
      bad(key, "must be an integer >= 1")
  for key in ("reps_rel", "matrix_epsilon", "exponent_multiplier"):
    if key in h and isinstance(h[key], (int, float)) and h[key] <= 0:
      bad(key, "must be > 0")
  if name in ("cocob",) and isinstance(h.get("alpha"), (int, float)) and h["alpha"] <= 0:
    bad("alpha", "must be > 0")  # COCOB's reward bound: alpha L_i in its denominator
  if name in ("dowg",) and isinstance(h.get("epsilon"), (int, float)) and h["epsilon"] <= 0:
    bad("epsilon", "must be > 0")  # DoWG's first distance estimate: 0 never moves
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
