"""One trial's settings, written once: names, types, defaults, and whether they
change what the trial computes.

`None` is the only "use the default" value: `resolve(workload)` fills in the
defaults below, and the workload's own for batch size, step budget and eval
cadence. Settings marked `affects_results` are part of a study's identity (a
study rerun with another value is another study); the others say where the
data lives and how the work is cut up, not what is computed. bench.train's
`--config`, the recipes' `settings` section and bench.study all take their
fields from here. A leaf: it imports nothing else of the project and no jax.
"""
from __future__ import annotations

import ast
import dataclasses
from typing import Any, Mapping


class SettingsError(ValueError):
  """A malformed setting; the message is one line."""


def _field(default: Any, affects: bool, doc: str) -> Any:
  return dataclasses.field(default=None, metadata={"default": default, "affects": affects,
                                                   "doc": doc})


WORKLOAD_DEFAULT = "the workload's"


@dataclasses.dataclass(frozen=True)
class TrialSettings:
  batch_size: int | None = _field(WORKLOAD_DEFAULT, True, "examples per step")
  train_steps: int | None = _field(WORKLOAD_DEFAULT, True, "step budget")
  eval_every: int | None = _field(WORKLOAD_DEFAULT, True, "steps between evaluations")
  dtype: str | None = _field("float32", True,
                             "compute dtype: float32 or bfloat16 (fp32 parameters and "
                             "optimizer state either way)")
  divergence_factor: float | None = _field(
      100.0, True, "status diverged when the loss is non-finite or > factor x initial")
  eval_test: bool | None = _field(True, True, "also evaluate the test split")
  workload_args: str | None = _field(
      "", True, "workload constructor arguments as Python literals, e.g. 'image_size=64'")
  data_dir: str | None = _field("", False, "offline arrays / text, or a tfds data directory")
  max_steps_per_dispatch: int | None = _field(500, False, "steps fused into one device call")
  checkpoint_every_sec: float | None = _field(
      600.0, False, "mid-trial checkpoint cadence in seconds of wall time")

  # ----- reading -----
  @classmethod
  def from_mapping(cls, values: Mapping[str, Any] | None) -> "TrialSettings":
    """From a dict or ConfigDict section (unknown names: one-line SettingsError)."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
      raise SettingsError(f"unknown trial setting {unknown[0]!r}; known: {', '.join(NAMES)}")
    s = cls(**{k: v for k, v in values.items()})
    s.check()
    return s

  def replace(self, **changes: Any) -> "TrialSettings":
    return dataclasses.replace(self, **changes)

  def check(self) -> None:
    """Types and ranges of the values given (None passes)."""
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if v is None:
        continue
      kind = _TYPES[f.name]
      if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
      if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise SettingsError(f"setting {f.name} must be {kind.__name__}, got {v!r}")
      if f.name in ("batch_size", "train_steps", "eval_every", "max_steps_per_dispatch") \
          and v < 1:
        raise SettingsError(f"setting {f.name} must be a positive integer, got {v!r}")
      if f.name in ("divergence_factor", "checkpoint_every_sec") and v < 0:
        raise SettingsError(f"setting {f.name} must be >= 0, got {v!r}")
    if self.dtype not in (None, "float32", "bfloat16"):
      raise SettingsError(f"setting dtype must be float32 or bfloat16, got {self.dtype!r}")
    parse_workload_args(self.workload_args)

  # ----- defaults -----
  def resolve(self, workload: Any = None) -> "TrialSettings":
    """Every field concrete: the value given, else the default (the
    workload's for batch size, budget and cadence; eval_every at most the budget)."""
    out = {}
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if v is None:
        v = f.metadata["default"]
        if v == WORKLOAD_DEFAULT:
          v = None if workload is None else getattr(workload, f"default_{f.name}")
      out[f.name] = v
    if workload is not None and self.eval_every is None:
      out["eval_every"] = min(out["eval_every"], out["train_steps"])
    return TrialSettings(**out)

  def identity(self) -> dict[str, Any]:
    """The settings that change results, defaults filled in (not the
    workload-dependent ones, which the workload's name and arguments fix)."""
    r = self.resolve()
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(self)
            if f.metadata["affects"] and getattr(r, f.name) is not None}

  @property
  def workload_kwargs(self) -> dict[str, Any]:
    return parse_workload_args(self.workload_args)


NAMES = tuple(f.name for f in dataclasses.fields(TrialSettings))
_TYPES = {"batch_size": int, "train_steps": int, "eval_every": int, "dtype": str,
          "divergence_factor": float, "eval_test": bool, "workload_args": str, "data_dir": str,
          "max_steps_per_dispatch": int, "checkpoint_every_sec": float}
STUDY_FIELDS = ("batch_size", "train_steps", "eval_every")  # set by a study, not its recipe


def describe() -> list[tuple[str, str, Any, bool, str]]:
  """(name, type, default, affects results, doc) per setting, for docs and flags."""
  return [(f.name, _TYPES[f.name].__name__, f.metadata["default"], f.metadata["affects"],
           f.metadata["doc"]) for f in dataclasses.fields(TrialSettings)]


def placeholders(exclude: tuple[str, ...] = ()) -> Any:
  """A ConfigDict of typed placeholders (None), so `--config....<name>=v` works."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict()
  for name in NAMES:
    if name not in exclude:
      c[name] = config_dict.placeholder(_TYPES[name])
  return c


def parse_workload_args(text: str | None) -> dict[str, Any]:
  """'image_size=64,stage_sizes=(1,1)' -> {'image_size': 64, 'stage_sizes': (1, 1)}:
  Python literals as keyword arguments of the workload's constructor."""
  if not text or not str(text).strip():
    return {}
  try:
    call = ast.parse(f"f({text})", mode="eval").body
    if call.args:
      raise ValueError("arguments must be name=value")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}
  except (SyntaxError, ValueError) as e:
    raise SettingsError(f"bad workload arguments {text!r}: expected name=literal,... ({e})"
                        ) from None
