"""The update rules behind bench.optimizers' names, built from optax, following the
Tuning Playbook FAQ's update rules. Each `make(lr, h)` builds one from the
learning-rate schedule and its hyperparameters h (defaults filled in by the
registry, bench.optimizers: the one place they are written).

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

Rules that read the loss, each optax.contrib's own: the train step passes optax's extra
arguments `value` (the batch loss) and `obj_fn` (the batch loss as a function of the
parameters) to every rule:
  sophia     m = b1 m + (1-b1) g; every update_interval steps h = b2 h + (1-b2) u * (H u)
             with Rademacher u (Hutchinson); theta -= lr_t (clip(m / max(gamma h, eps),
             clip_threshold) + weight_decay theta)                     (Liu et al. 2023)
  momo, momo_adam   Polyak-type step: the momentum (Adam) direction scaled by
             min(lr_t, (f_bar - lower_bound)_+ / ||d||^2) from the loss value
                                                       (Schaipp et al. 2023)
  momentum_plateau   heavy-ball momentum whose step is scaled by optax.contrib.reduce_on_plateau:
             the batch loss averaged over accumulation_size steps; after `patience` such
             averages without a relative improvement of rtol, the scale *= factor
             (He et al. 2016's "divided by 10 when the error plateaus"; PyTorch's and
             Keras' ReduceLROnPlateau)
  polyak_sgd SGD with the stochastic Polyak step min((f - lower_bound) / |g|^2,
             max_learning_rate), times learning_rate (optax.polyak_sgd's scaling; Loizou
             et al. 2021, "Stochastic Polyak Step-size for SGD", SPS_max)
optax's Hutchinson estimator takes its Hessian-vector product forward-over-reverse
(jax.jvp of jax.grad), which the CPU convolution path (workloads/models/conv.py, a custom
VJP) cannot differentiate; `hutchinson_reverse` here is the same estimator with the product
taken reverse-over-reverse (the gradient of <grad f, u>), which a custom VJP allows, so
sophia runs on every workload (tests/test_optimizers_loss.py: equal to optax's own on an
MLP, and it trains the CNN). Its every-update_interval `lax.cond` tests the rule's own
count, which a pack's vmap batches (both branches, the Hessian product every step);
`count_from_step` gives it the pack's shared step instead, so it stays a real cond.
Kron (PSGD with Kronecker-factored preconditioners, Li 2018) is written here from Li's
papers and kron_torch (bench/kron.py, tested against a NumPy float64 transcription):
psgd-jax 0.2.9 imports optax._src.clipping, gone from optax 0.2.8, and an undeclared
chex; psgdax 0.1.1 prints on init and draws its update decisions and probes from a
PRNG key in each lane's state, so under a pack's vmap its update `lax.cond` runs both
branches every step. Ours updates on kron_torch's deterministic schedule, by step.

Every optimizer also takes the schedule hyperparameters of bench.schedules.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.contrib

from bench import kron as psgd_kron
from bench import preconditioners


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


def sgd(lr, h):
  return optax.scale_by_learning_rate(lr)


def heavy_ball(nesterov):
  def make(lr, h):
    return optax.chain(optax.trace(decay=h["momentum"], nesterov=nesterov),
                       optax.scale_by_learning_rate(lr))
  return make


def rmsprop(lr, h):
  return optax.chain(
      optax.scale_by_rms(decay=h["rho"], eps=h["epsilon"], initial_scale=1.0, eps_in_sqrt=True),
      optax.scale_by_learning_rate(lr),
      optax.trace(decay=h["momentum"]))


def adam(nesterov, decoupled):
  def make(lr, h):
    parts = [scale_by_playbook_adam(h["beta1"], h["beta2"], h["epsilon"], nesterov)]
    if decoupled:
      parts.append(optax.add_decayed_weights(h["weight_decay"]))
    parts.append(optax.scale_by_learning_rate(lr))
    return optax.chain(*parts)
  return make


def lamb(lr, h):
  return optax.lamb(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                    weight_decay=h["weight_decay"])


def lars(lr, h):
  return optax.lars(lr, weight_decay=h["weight_decay"], momentum=h["momentum"],
                    trust_coefficient=h["trust_coefficient"], nesterov=False)


def schedule_free_adamw(lr, h):
  # Schedule-free methods replace the decay schedule; warmup_steps is theirs.
  return optax.contrib.schedule_free_adamw(
      learning_rate=h["learning_rate"], warmup_steps=int(h.get("warmup_steps") or 0) or None,
      b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"], weight_decay=h["weight_decay"])


def lion(lr, h):
  return optax.lion(lr, b1=h["beta1"], b2=h["beta2"], weight_decay=h["weight_decay"])


def signum(lr, h):
  return optax.signum(lr, beta=h["momentum"])


def adopt(lr, h):
  return optax.contrib.adopt(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def ademamix(lr, h):
  # Constant alpha and beta3: the paper's warmup schedulers for them (over the whole
  # run) are not used, as optax's defaults do not use them either.
  return optax.contrib.ademamix(lr, b1=h["beta1"], b2=h["beta2"], b3=h["beta3"],
                                alpha=h["alpha"], eps=h["epsilon"],
                                weight_decay=h["weight_decay"])


def muon(lr, h):
  # optax's split: Newton-Schulz on every leaf with ndim == 2 (x @ W kernels, reduction
  # axis 0, output axis 1), its NAdamW on every other leaf. In this harness's flax trees
  # that puts Dense kernels and also embedding tables (token, position) under Muon, and
  # biases, norm scales, 4-D conv kernels (HWIO) and the LM's 3-D/4-D attention kernels
  # under AdamW. weight_decay applies to both parts (optax's adam part defaults to none).
  return optax.contrib.muon(lr, beta=h["momentum"], eps=h["epsilon"],
                            weight_decay=h["weight_decay"], adam_b1=h["beta1"],
                            adam_b2=h["beta2"], adam_weight_decay=h["weight_decay"])


def prodigy(lr, h):
  return optax.contrib.prodigy(lr, betas=(h["beta1"], h["beta2"]), eps=h["epsilon"],
                               estim_lr0=h["estim_lr0"], weight_decay=h["weight_decay"])


def schedule_free_sgd(lr, h):
  # As schedule_free_adamw: the schedule-free average replaces the decay schedule.
  return optax.contrib.schedule_free_sgd(
      learning_rate=h["learning_rate"], warmup_steps=int(h.get("warmup_steps") or 0) or None,
      b1=h["momentum"], weight_decay=h["weight_decay"])


def adafactor(lr, h):
  # momentum=beta1 always (an EMA with decay 0 is the identity: beta1 = 0 is the paper's
  # no-momentum rule), so beta1 stays a value of the program.
  return optax.adafactor(lr, decay_rate=h["decay_rate"], momentum=h["beta1"],
                         eps=h["epsilon"])


def radam(lr, h):
  return optax.radam(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


# ----- more of optax / optax.contrib (module docstring, "More optax rules") -----

def adan(lr, h):
  return optax.adan(lr, b1=h["beta1"], b2=h["beta2"], b3=h["beta3"], eps=h["epsilon"],
                    weight_decay=h["weight_decay"])


def cocob(lr, h):
  return optax.contrib.cocob(lr, alpha=h["alpha"], eps=h["epsilon"],
                             weight_decay=h["weight_decay"])


def dadapt_adamw(lr, h):
  return optax.contrib.dadapt_adamw(lr, betas=(h["beta1"], h["beta2"]), eps=h["epsilon"],
                                    estim_lr0=h["estim_lr0"], weight_decay=h["weight_decay"])


def dog(lr, h):
  # ('heuristic', reps_rel): the first step's distance r_eps = reps_rel (1 + |x_0|).
  return optax.contrib.dog(lr, init_step=("heuristic", h["reps_rel"]), eps=h["epsilon"],
                           weight_decay=h["weight_decay"])


def dowg(lr, h):
  # optax's default: the initial squared-distance estimate is epsilon.
  return optax.contrib.dowg(lr, eps=h["epsilon"], weight_decay=h["weight_decay"])


def madgrad(lr, h):
  return optax.contrib.madgrad(lr, momentum=h["momentum"], eps=h["epsilon"],
                               weight_decay=h["weight_decay"])


def sign_sgd(lr, h):
  return optax.sign_sgd(lr)


def acprop(lr, h):
  return optax.contrib.acprop(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                              eps_root=h["epsilon"], weight_decay=h["weight_decay"])


def adabelief(lr, h):
  return optax.adabelief(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                         eps_root=h["epsilon"])


def yogi(lr, h):
  return optax.yogi(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def amsgrad(lr, h):
  return optax.amsgrad(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def adamax(lr, h):
  return optax.adamax(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"])


def novograd(lr, h):
  return optax.novograd(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                        weight_decay=h["weight_decay"])


def adagrad(lr, h):
  return optax.adagrad(lr, initial_accumulator_value=h["initial_accumulator"],
                       eps=h["epsilon"])


def adadelta(lr, h):
  return optax.adadelta(lr, rho=h["rho"], eps=h["epsilon"], weight_decay=h["weight_decay"])


def fromage(lr, h):
  return optax.fromage(lr, min_norm=h["min_norm"])


# ----- Shampoo and SOAP (bench/preconditioners.py, written from their papers) -----

def shampoo(graft):
  def make(lr, h):
    return optax.chain(
        preconditioners.scale_by_shampoo(
            h["beta1"], h["beta2"], h.get("epsilon", 0.0), h["matrix_epsilon"],
            h["exponent_multiplier"], block_size=int(h["block_size"]),
            precondition_frequency=int(h["precondition_frequency"]), graft=graft),
        optax.add_decayed_weights(h["weight_decay"]),
        optax.scale_by_learning_rate(lr))
  return make


def soap(lr, h):
  return optax.chain(
      preconditioners.scale_by_soap(h["beta1"], h["beta2"], h["epsilon"],
                                    block_size=int(h["block_size"]),
                                    precondition_frequency=int(h["precondition_frequency"])),
      optax.add_decayed_weights(h["weight_decay"]),
      optax.scale_by_learning_rate(lr))


def kron(lr, h):
  return psgd_kron.kron(lr, beta1=h["beta1"], weight_decay=h["weight_decay"],
                        preconditioner_lr=h["preconditioner_lr"],
                        preconditioner_init_scale=h["preconditioner_init_scale"])


# ----- rules that read the loss: value / obj_fn (module docstring) -----

class HutchinsonState(NamedTuple):
  key: jax.Array


def hutchinson_reverse(seed: int = 0) -> optax.GradientTransformationExtraArgs:
  """optax.contrib's Hutchinson estimate of the Hessian diagonal, u * (H u) with
  Rademacher u, but H u = grad(<grad f, u>): reverse-over-reverse. Written here
  because optax's takes jvp(grad f), which no custom-VJP function (the CPU
  convolution) supports; the same key sequence, so the same estimates."""

  def init(params):
    del params
    return HutchinsonState(jax.random.PRNGKey(seed))

  def update(updates, state, params=None, obj_fn=None, **extra_args):
    del updates, extra_args
    if params is None or obj_fn is None:
      raise ValueError("the Hutchinson estimate needs params and obj_fn")
    key, subkey = jax.random.split(state.key)
    signs = optax.tree.random_like(subkey, params, jax.random.rademacher, dtype=jnp.float32)
    signs = optax.tree.cast(signs, optax.tree.dtype(params, "lowest"))
    hvp = jax.grad(lambda p: optax.tree.vdot(jax.grad(obj_fn)(p), signs))(params)
    return jax.tree.map(lambda h, r: h * r, hvp, signs), HutchinsonState(key)

  return optax.GradientTransformationExtraArgs(init, update)


def _count_from(state, step):
  if "count" in getattr(state, "_fields", ()):      # a NamedTuple state with a count
    return state._replace(count=jnp.asarray(step, state.count.dtype))
  if type(state) is tuple:                      # a chain's states
    return tuple(_count_from(s, step) for s in state)
  return state


def count_from_step(inner: optax.GradientTransformationExtraArgs
                    ) -> optax.GradientTransformationExtraArgs:
  """`inner` with every `count` of its (chain's) states replaced, before each update,
  by the shared extra argument `step` where one is given. A rule that branches on its
  own count (optax.contrib.sophia's every-update_interval `lax.cond`) then branches on
  a value a pack's vmap does not batch: a real cond, the periodic work only on its
  steps, where a per-lane count makes it a select that runs both branches every step.
  Equal to `inner` whenever count == step, which holds in the train step (both count
  the updates before this one, and a checkpoint restores both)."""

  def update(updates, state, params=None, *, step=None, **extra_args):
    if step is not None:
      state = _count_from(state, step)
    return inner.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(inner.init, update)


def sophia(lr, h):
  return count_from_step(optax.contrib.sophia(
      lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"], weight_decay=h["weight_decay"],
      gamma=h["gamma"], clip_threshold=h["clip_threshold"],
      update_interval=int(h["update_interval"]), hessian_diagonal_fn=hutchinson_reverse()))


def momo(lr, h):
  return optax.contrib.momo(lr, beta=h["momentum"], lower_bound=h["lower_bound"],
                            weight_decay=h["weight_decay"])


def momo_adam(lr, h):
  return optax.contrib.momo_adam(lr, b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"],
                                 lower_bound=h["lower_bound"], weight_decay=h["weight_decay"])


def momentum_plateau(lr, h):
  # factor and rtol are Python numbers (static_hparams): optax checks their ranges when
  # it builds the rule; patience and accumulation_size are compared in the program, so
  # they are values of it.
  return optax.chain(heavy_ball(False)(lr, h),
                     optax.contrib.reduce_on_plateau(
                         factor=float(h["factor"]), rtol=float(h["rtol"]),
                         patience=h["patience"], accumulation_size=h["accumulation_size"]))


def polyak_sgd(lr, h):
  return optax.polyak_sgd(max_learning_rate=h["max_learning_rate"], scaling=lr,
                          f_min=h["lower_bound"], eps=h["epsilon"])
