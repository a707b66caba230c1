"""The rest of optax / optax.contrib that trains from scratch (presets.MORE_OPTIMIZERS,
issue 21): each against optax's own transformation with the same hyperparameters, packs
(vmap over the hyperparameter values) equal to solo runs, range checks, Choi-style search
spaces, and `python -m bench.train` on mnist1d_mlp with each rule's defaults (its
validation loss falls)."""
import optax
import optax.contrib
import pytest

from bench import optimizers
from optimizer_harness import (check_bad_value, check_choi_levels, check_matches_optax,
                               check_pack_equals_solo, check_registered, check_trained,
                               second_point, train_all)
from protocols import presets

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
  check_registered(MORE, CASES)


@pytest.mark.parametrize("name", MORE)
def test_matches_optax_with_the_same_hyperparameters(name):
  check_matches_optax(name, CASES[name], optax_own, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MORE)
def test_a_pack_of_two_equals_two_solo_runs(name):
  check_pack_equals_solo(name, CASES[name], second_point(CASES[name]))


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
  check_bad_value(name, key, value, match)


@pytest.mark.parametrize("name", MORE)
def test_choi_levels_are_nested_and_their_points_resolve(name):
  spaces = check_choi_levels(name, middle_searches_more=False)
  # Every hyperparameter is searched at 'all' except numerical guards and D-Adaptation's
  # initial estimate (which it grows from; prodigy's estim_lr0 is not searched either).
  guards = {"cocob": {"epsilon"}, "dog": {"epsilon"}, "fromage": {"min_norm"},
            "dadapt_adamw": {"estim_lr0"}}
  for k in optimizers.entry(name).defaults:
    assert (k in spaces[2] and spaces[2][k]["kind"] != "fixed") or \
        k in guards.get(name, ()), (name, k)


# ----- python -m bench.train with each rule's defaults -----

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  return train_all(MORE, tmp_path_factory, "train")


@pytest.mark.parametrize("name", MORE)
def test_bench_train_trains_with_the_defaults(trained, name):
  check_trained(*trained, name)
