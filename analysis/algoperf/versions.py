"""AlgoPerf's published scoring facts per benchmark version, as plain data.

A score is only comparable to a leaderboard when it uses that leaderboard's
targets, budgets, held-out workloads and tau grid, so they ship here rather than
being passed in by hand. Sources (mlcommons/algorithmic-efficiency):
`algoperf/workloads/*/workload.py` and its `_jax` / `_pytorch` variants
(validation targets, `max_allowed_runtime_sec`), `algoperf/workloads/workloads.py`
(BASE_WORKLOADS), `scoring/algoperf_v05/held_out_workloads_algoperf_v05.json`,
`scoring/compute_speedups.py` (the v0.5 budgets), `scoring/score_submissions.py`
(tau grid: 100 points on [1, 4]) and docs/DOCUMENTATION.md / CHANGELOG.md (v0.6:
new budgets, 3 studies, no held-out workloads, self-tuning budget 1.5x).
The scoring code now lives in mlcommons/submissions_algorithms `scoring/`; its
`workload_targets.json` there (labelled 0.6) lists a ninth base workload,
finewebedu_lm, which the v0.6 leaderboard (2025-03-24, 8 workloads: the
scoring code of that date had NUM_BASE_WORKLOADS = 8) never ran: with it, rho
would be divided by 9 and that code stops on the v0.6 logs (KeyError), so v0.6
here keeps the 8 workloads the leaderboard scored.
`ties` names the tie-break of step 2 that reproduces each version's reference
(analysis.algoperf.scoring: the official code leaves it to the directory listing).

Targets are in AlgoPerf's own terms: the native metric column of
eval_measurements.csv and whether higher is better (accuracy, ssim, bleu, mAP).
Variant targets are those of the final v0.5 code (the WMT variants were lowered
on 2024-04-08, after the v0.5.0 tag; the competition was scored with the lower ones).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

RULESETS = ("external_tuning", "self_tuning")


@dataclasses.dataclass(frozen=True)
class Target:
  """A workload's validation target and its external-tuning runtime budget."""
  metric: str               # native column, e.g. 'validation/accuracy'
  value: float
  higher_is_better: bool
  max_runtime_sec: float    # external-tuning budget; self-tuning multiplies it

  def reached(self, values: np.ndarray) -> np.ndarray:
    """AlgoPerf's test: at or past the target (NaN never reaches)."""
    with np.errstate(invalid="ignore"):
      return values >= self.value if self.higher_is_better else values <= self.value


@dataclasses.dataclass(frozen=True)
class Version:
  """Everything the official scoring of one leaderboard version depends on."""
  name: str
  base_workloads: tuple[str, ...]
  held_out: Mapping[str, str]          # scored variant -> its base workload
  targets: Mapping[str, Target]        # base workloads, held-out and other variants
  runtime_factor: Mapping[str, float]  # ruleset -> multiple of the external budget
  num_studies: int
  num_trials: int
  tau_min: float = 1.0
  tau_max: float = 4.0
  tau_points: int = 100
  max_ratio: float = 4.0               # held-out rule: slower than 4x the fastest is a miss
  source: str = ""
  ties: str = "lowest"                 # step 2's tie-break (analysis.algoperf.scoring.TIES)

  @property
  def scored_workloads(self) -> tuple[str, ...]:
    """Base workloads, then the held-out variants: the workloads the score reads."""
    return tuple(self.base_workloads) + tuple(self.held_out)

  def taus(self) -> np.ndarray:
    return np.linspace(self.tau_min, self.tau_max, self.tau_points)

  def max_runtime(self, workload: str, ruleset: str) -> float:
    """The budget in seconds: a target first reached later does not count."""
    return float(self.targets[workload].max_runtime_sec) * self.runtime_factor[ruleset]


BASE_WORKLOADS = ("criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit",
                  "librispeech_conformer", "librispeech_deepspeech", "ogbg", "wmt")

# Native validation metric and direction per base workload (same in v0.5 and v0.6).
_METRIC = {
    "criteo1tb": ("validation/loss", False),
    "fastmri": ("validation/ssim", True),
    "imagenet_resnet": ("validation/accuracy", True),
    "imagenet_vit": ("validation/accuracy", True),
    "librispeech_conformer": ("validation/wer", False),
    "librispeech_deepspeech": ("validation/wer", False),
    "ogbg": ("validation/mean_average_precision", True),
    "wmt": ("validation/bleu", True),
}
_BASE_TARGET = {
    "criteo1tb": 0.123735, "fastmri": 0.723653, "imagenet_resnet": 0.77431,
    "imagenet_vit": 0.77309, "librispeech_conformer": 0.085884,
    "librispeech_deepspeech": 0.119936, "ogbg": 0.28098, "wmt": 30.8491,
}
# Every published variant: name -> (base workload, validation target).
VARIANTS: dict[str, tuple[str, float]] = {
    "criteo1tb_layernorm": ("criteo1tb", 0.123757),
    "criteo1tb_resnet": ("criteo1tb", 0.12415),
    "criteo1tb_embed_init": ("criteo1tb", 0.129657),
    "fastmri_model_size": ("fastmri", 0.723559),
    "fastmri_tanh": ("fastmri", 0.717840),
    "fastmri_layernorm": ("fastmri", 0.723284),
    "imagenet_resnet_silu": ("imagenet_resnet", 0.75445),
    "imagenet_resnet_gelu": ("imagenet_resnet", 0.76765),
    "imagenet_resnet_large_bn_init": ("imagenet_resnet", 0.76526),
    "imagenet_vit_glu": ("imagenet_vit", 0.75738),
    "imagenet_vit_post_ln": ("imagenet_vit", 0.75312),
    "imagenet_vit_map": ("imagenet_vit", 0.77113),
    "librispeech_conformer_attention_temperature": ("librispeech_conformer", 0.109977),
    "librispeech_conformer_layernorm": ("librispeech_conformer", 0.09731),
    "librispeech_conformer_gelu": ("librispeech_conformer", 0.094114),
    "librispeech_deepspeech_tanh": ("librispeech_deepspeech", 0.150883),
    "librispeech_deepspeech_no_resnet": ("librispeech_deepspeech", 0.131564),
    "librispeech_deepspeech_norm_and_spec_aug": ("librispeech_deepspeech", 0.14342),
    "ogbg_gelu": ("ogbg", 0.27771),
    "ogbg_silu": ("ogbg", 0.282178),
    "ogbg_model_size": ("ogbg", 0.269446),
    "wmt_post_ln": ("wmt", 30.0779),
    "wmt_attention_temp": ("wmt", 29.3379),
    "wmt_glu_tanh": ("wmt", 29.5779),
}
# External-tuning max runtimes in seconds (variants run under their base's budget).
_BUDGET_V05 = {
    "criteo1tb": 7703, "fastmri": 8859, "imagenet_resnet": 63008, "imagenet_vit": 77520,
    "librispeech_conformer": 61068, "librispeech_deepspeech": 55506, "ogbg": 18477,
    "wmt": 48151,
}
_BUDGET_V06 = {
    "criteo1tb": 7703, "fastmri": 4430, "imagenet_resnet": 66159, "imagenet_vit": 69768,
    "librispeech_conformer": 58015, "librispeech_deepspeech": 44405, "ogbg": 12011,
    "wmt": 43336,
}


def _targets(budget: Mapping[str, float]) -> dict[str, Target]:
  named = {w: (w, v) for w, v in _BASE_TARGET.items()} | VARIANTS
  return {name: Target(_METRIC[base][0], value, _METRIC[base][1], budget[base])
          for name, (base, value) in named.items()}


VERSIONS: dict[str, Version] = {
    "0.5": Version(
        name="0.5", base_workloads=BASE_WORKLOADS,
        held_out={"criteo1tb_embed_init": "criteo1tb", "fastmri_tanh": "fastmri",
                  "imagenet_resnet_large_bn_init": "imagenet_resnet",
                  "librispeech_conformer_layernorm": "librispeech_conformer",
                  "ogbg_model_size": "ogbg", "wmt_glu_tanh": "wmt"},
        targets=_targets(_BUDGET_V05),
        runtime_factor={"external_tuning": 1.0, "self_tuning": 3.0},
        num_studies=5, num_trials=5,
        source="AlgoPerf v0.5 (first competition, leaderboard v0.5)"),
    "0.6": Version(
        name="0.6", base_workloads=BASE_WORKLOADS, held_out={},
        targets=_targets(_BUDGET_V06),
        runtime_factor={"external_tuning": 1.0, "self_tuning": 1.5},
        num_studies=3, num_trials=5,
        source="AlgoPerf v0.6 (2025-06-24): new budgets, 3 studies, no held-out workloads",
        # The published v0.6 scores need the faster of two trials tied on evaluation count
        # (shampoo, fastmri, study_0: trials 2 and 5); the lowest number gives baseline 0.4716.
        ties="fastest"),
}


def get(version: str) -> Version:
  """The version table for '0.5' or '0.6' (also 'v0.5'); KeyError names the known ones."""
  key = str(version).lower().removeprefix("v")
  if key not in VERSIONS:
    raise KeyError(f"unknown AlgoPerf version {version!r} (known: {', '.join(VERSIONS)})")
  return VERSIONS[key]
