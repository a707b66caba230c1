"""Search spaces: parameter specs, conditions and reparameterisations, as plain data.

A search space maps a parameter name to a spec (a dict or ConfigDict):

  {'kind': 'linear', 'low': a, 'high': b}   uniform in [a, b]
  {'kind': 'log',    'low': a, 'high': b}   log-uniform, 0 < a <= b
  {'kind': 'log1m',  'low': a, 'high': b}   1 - x log-uniform, a <= b < 1 (momentum, betas)
  {'kind': 'int',    'low': a, 'high': b}   integers in [a, b] inclusive ('log': True for
                                            log spacing, then a >= 1)
  {'kind': 'choice', 'values': [...]}        one of the values
  {'kind': 'fixed',  'value': v}             a constant

Any spec may add
  'condition': {'optimizer': ['adam', 'nadam']}   the parameter exists in a point only when
      each named choice/fixed parameter takes one of the listed values (absent otherwise);
  'reparam': 'effective_learning_rate'   (linear / log / log1m only) the parameter is a
      *searched quantity*, not a hyperparameter: the named entry of REPARAMS turns it into
      its output hyperparameter (here learning_rate = elr * (1 - momentum)) and the searched
      quantity itself stays out of the point.

The unit-cube coordinate of a parameter maps to its value monotonically, u=0 to `low` and
u=1 to `high` exactly, so samplers work in [0, 1]^d and never see the scales.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

PARAM_KINDS = ("linear", "log", "log1m", "int", "choice", "fixed")
CONTINUOUS_KINDS = ("linear", "log", "log1m")
_KIND_KEYS = {
    "linear": {"low", "high"},
    "log": {"low", "high"},
    "log1m": {"low", "high"},
    "int": {"low", "high"},
    "choice": {"values"},
    "fixed": {"value"},
}
_OPTIONAL_KEYS = {"kind", "condition", "reparam"}
_SCALAR_TYPES = (str, int, float, bool, type(None))


class ProtocolError(ValueError):
  """A malformed protocol; the message is one line that names the problem."""


# --- Spec builders: short, readable config files. ---------------------------------------

def _spec(kind: str, condition: Mapping[str, Sequence[Any]] | None,
          reparam: str | None, **fields: Any) -> dict[str, Any]:
  spec = {"kind": kind, **fields}
  if condition is not None:
    spec["condition"] = {k: list(v) for k, v in condition.items()}
  if reparam is not None:
    spec["reparam"] = reparam
  return spec


def linear(low: float, high: float, *, condition: Mapping[str, Sequence[Any]] | None = None,
           reparam: str | None = None) -> dict[str, Any]:
  """Uniform in [low, high]."""
  return _spec("linear", condition, reparam, low=float(low), high=float(high))


def log(low: float, high: float, *, condition: Mapping[str, Sequence[Any]] | None = None,
        reparam: str | None = None) -> dict[str, Any]:
  """Log-uniform in [low, high] (learning rates, epsilon, weight decay)."""
  return _spec("log", condition, reparam, low=float(low), high=float(high))


def log1m(low: float, high: float, *, condition: Mapping[str, Sequence[Any]] | None = None,
          reparam: str | None = None) -> dict[str, Any]:
  """x in [low, high] with 1 - x log-uniform (momentum, beta1, beta2, rho)."""
  return _spec("log1m", condition, reparam, low=float(low), high=float(high))


def integer(low: int, high: int, *, log: bool = False,
            condition: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
  """Integers in [low, high], both inclusive; log-spaced when `log`."""
  spec = _spec("int", condition, None, low=int(low), high=int(high))
  if log:
    spec["log"] = True
  return spec


def choice(values: Sequence[Any], *,
           condition: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
  """One of `values` (optimizer names, schedules, discrete settings)."""
  return _spec("choice", condition, None, values=list(values))


def fixed(value: Any, *, condition: Mapping[str, Sequence[Any]] | None = None
          ) -> dict[str, Any]:
  """A constant: fixed hyperparameters are written down too, never left implicit."""
  return _spec("fixed", condition, None, value=value)


# --- Reparameterisations. -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Reparam:
  """Turns a searched quantity x into the hyperparameter `output`.

  forward(x, point) -> output value; inverse(output value, point) -> x (used to tell
  an adaptive sampler which x a finished trial had). `uses` names the hyperparameters of
  the point both functions read.
  """
  output: str
  uses: tuple[str, ...]
  forward: Callable[[float, Mapping[str, Any]], float]
  inverse: Callable[[float, Mapping[str, Any]], float]
  doc: str


REPARAMS: dict[str, Reparam] = {}


def register_reparam(name: str, reparam: Reparam) -> None:
  """Adds a named reparameterisation that search spaces can refer to."""
  if name in REPARAMS:
    raise ProtocolError(f"reparam {name!r} is already registered")
  REPARAMS[name] = reparam


register_reparam("effective_learning_rate", Reparam(
    output="learning_rate", uses=("momentum",),
    forward=lambda elr, p: elr * (1.0 - p["momentum"]),
    inverse=lambda lr, p: lr / (1.0 - p["momentum"]),
    doc="search elr = learning_rate / (1 - momentum) (Shallue et al. 2018 plot this)"))
register_reparam("learning_rate_times_weight_decay", Reparam(
    output="weight_decay", uses=("learning_rate",),
    forward=lambda x, p: x / p["learning_rate"],
    inverse=lambda wd, p: wd * p["learning_rate"],
    doc="search the per-step decoupled decay learning_rate * weight_decay"))


# --- Structure: names, dimensions, conditions. ------------------------------------------

def names(space: Mapping[str, Any]) -> list[str]:
  """Parameter names in canonical (sorted) order, independent of insertion order."""
  return sorted(space)


def dimensions(space: Mapping[str, Any]) -> list[str]:
  """The parameters that take a unit-cube coordinate: every non-fixed one, conditional
  or not, so the dimension of the cube never depends on the point."""
  return [n for n in names(space) if space[n]["kind"] != "fixed"]


def condition_of(spec: Mapping[str, Any]) -> dict[str, list[Any]]:
  return {k: list(v) for k, v in (spec.get("condition") or {}).items()}


def condition_order(space: Mapping[str, Any]) -> list[str]:
  """Names ordered so that each parameter comes after those its condition reads."""
  order: list[str] = []
  state: dict[str, str] = {}

  def visit(name: str, path: tuple[str, ...]) -> None:
    if state.get(name) == "done":
      return
    if state.get(name) == "open":
      raise ProtocolError(f"conditions form a cycle: {' -> '.join(path + (name,))}")
    state[name] = "open"
    for target in sorted(condition_of(space[name])):
      if target in space:
        visit(target, path + (name,))
    state[name] = "done"
    order.append(name)

  for name in names(space):
    visit(name, ())
  return order


def is_active(spec: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
  """Whether a parameter exists given the values decided so far."""
  return all(t in values and values[t] in allowed for t, allowed in condition_of(spec).items())


# --- Unit cube -> value. ---------------------------------------------------------------

def to_value(spec: Mapping[str, Any], u: float) -> Any:
  """The value at unit coordinate u; monotone, u=0 -> low and u=1 -> high exactly."""
  kind = spec["kind"]
  if kind == "fixed":
    return spec["value"]
  u = min(max(float(u), 0.0), 1.0)
  if kind == "choice":
    values = list(spec["values"])
    return values[min(int(u * len(values)), len(values) - 1)]
  if kind == "int":
    return _int_value(spec, u)
  low, high = float(spec["low"]), float(spec["high"])
  if u == 0.0:
    return low
  if u == 1.0:
    return high
  if kind == "linear":
    x = low + u * (high - low)
  elif kind == "log":
    x = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
  elif kind == "log1m":
    # 1 - x runs log-uniformly from 1 - low (u=0) down to 1 - high (u=1).
    a, b = math.log1p(-low), math.log1p(-high)
    x = -math.expm1(a + u * (b - a))
  else:
    raise ProtocolError(f"unknown parameter kind {kind!r}")
  return min(max(x, low), high)


def _int_value(spec: Mapping[str, Any], u: float) -> int:
  low, high = int(spec["low"]), int(spec["high"])
  if spec.get("log"):
    x = math.exp(math.log(low) + u * (math.log(high + 1) - math.log(low)))
  else:
    x = low + u * (high - low + 1)
  return min(max(int(math.floor(x)), low), high)


def contains(spec: Mapping[str, Any], value: Any) -> bool:
  """Whether `value` is a point of the spec's range (used to check nested spaces)."""
  kind = spec["kind"]
  if kind == "fixed":
    return value == spec["value"]
  if kind == "choice":
    return value in list(spec["values"])
  if not _is_number(value):
    return False
  if kind == "int" and value != int(value):
    return False
  return float(spec["low"]) <= value <= float(spec["high"])


# --- Points. ----------------------------------------------------------------------------

def assemble(space: Mapping[str, Any], draw: Callable[[str, Mapping[str, Any]], Any]
             ) -> dict[str, Any]:
  """A point: draw(name, spec) for each active non-fixed parameter in condition order,
  inactive ones left out, then reparameterisations resolved."""
  raw: dict[str, Any] = {}
  for name in condition_order(space):
    spec = space[name]
    if not is_active(spec, raw):
      continue
    raw[name] = spec["value"] if spec["kind"] == "fixed" else _python(draw(name, spec))
  return resolve_reparams(space, raw)


def point_from_unit(space: Mapping[str, Any], u: Sequence[float]) -> dict[str, Any]:
  """The point at one row of the unit cube (columns ordered as dimensions(space))."""
  coord = dict(zip(dimensions(space), u))
  return assemble(space, lambda name, spec: to_value(spec, coord[name]))


def resolve_reparams(space: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
  """Replaces searched quantities by the hyperparameters they define."""
  searched = {n: space[n]["reparam"] for n in raw if space[n].get("reparam")}
  point = {n: v for n, v in raw.items() if n not in searched}
  pending = dict(searched)
  while pending:
    ready = [n for n, r in pending.items()
             if all(u in point and u not in _outputs(pending, exclude=n)
                    for u in REPARAMS[r].uses)]
    if not ready:
      missing = {n: [u for u in REPARAMS[r].uses if u not in point] for n, r in pending.items()}
      raise ProtocolError(f"reparams cannot be resolved, missing inputs: {missing}")
    for n in sorted(ready):
      rp = REPARAMS[pending.pop(n)]
      point[rp.output] = float(rp.forward(raw[n], point))
  return point


def _outputs(pending: Mapping[str, str], exclude: str) -> set[str]:
  return {REPARAMS[r].output for n, r in pending.items() if n != exclude}


def searched_values(space: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
  """The inverse of assemble: the searched quantity of every active parameter of a point
  (reparameterised ones recovered through their inverse)."""
  out: dict[str, Any] = {}
  for name in condition_order(space):
    spec = space[name]
    if spec["kind"] == "fixed" or not is_active(spec, {**point, **out}):
      continue
    rp_name = spec.get("reparam")
    if rp_name:
      rp = REPARAMS[rp_name]
      if rp.output not in point:
        raise ProtocolError(f"point lacks {rp.output!r} (output of reparam {rp_name!r})")
      out[name] = float(rp.inverse(point[rp.output], point))
    elif name in point:
      out[name] = point[name]
    else:
      raise ProtocolError(f"point lacks active parameter {name!r}")
  return out


def _python(value: Any) -> Any:
  """numpy scalars -> python scalars, so points are plain data."""
  return value.item() if isinstance(value, np.generic) else value


def _is_number(x: Any) -> bool:
  x = _python(x)
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --- Validation of a space on its own (optimizer-aware checks live in protocol.py). -----

def validate_space(space: Mapping[str, Any]) -> None:
  """Raises ProtocolError (one line) for the first malformed spec, condition or reparam."""
  check_specs(space)
  check_links(space)


def check_specs(space: Mapping[str, Any]) -> None:
  """Each spec on its own: kind, fields, ranges, choice values."""
  if not isinstance(space, Mapping) or not space:
    raise ProtocolError("search_space is empty: give at least one parameter")
  for name in names(space):
    _check_spec(name, space[name])


def check_links(space: Mapping[str, Any]) -> None:
  """What ties specs together: conditions (and their cycles) and reparam inputs."""
  for name in names(space):
    _check_condition(space, name)
  condition_order(space)  # cycles
  for name in names(space):
    if space[name].get("reparam"):
      _check_reparam(space, name)


def _check_spec(name: str, spec: Any) -> None:
  where = f"search_space.{name}"
  if not isinstance(spec, Mapping) or "kind" not in spec:
    raise ProtocolError(f"{where} must be a spec with a 'kind' (one of {', '.join(PARAM_KINDS)})")
  kind = spec["kind"]
  if kind not in PARAM_KINDS:
    raise ProtocolError(f"{where}: unknown kind {kind!r}; known: {', '.join(PARAM_KINDS)}")
  allowed = _KIND_KEYS[kind] | _OPTIONAL_KEYS | ({"log"} if kind == "int" else set())
  extra = sorted(set(spec) - allowed)
  if extra:
    raise ProtocolError(f"{where}: unknown field {extra[0]!r} for kind {kind!r} "
                        f"(fields: {', '.join(sorted(allowed))})")
  missing = sorted(_KIND_KEYS[kind] - set(spec))
  if missing:
    raise ProtocolError(f"{where}: kind {kind!r} needs field {missing[0]!r}")
  if kind == "choice":
    _check_choice(where, spec["values"])
  elif kind == "fixed":
    if not isinstance(spec["value"], _SCALAR_TYPES):
      raise ProtocolError(f"{where}: fixed value must be a number or a string, "
                          f"got {spec['value']!r}")
  else:
    _check_range(where, kind, spec)
  if spec.get("reparam") is not None and kind not in CONTINUOUS_KINDS:
    raise ProtocolError(f"{where}: a reparam needs a continuous kind "
                        f"({', '.join(CONTINUOUS_KINDS)}), not {kind!r}")


def _check_choice(where: str, values: Any) -> None:
  if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
    raise ProtocolError(f"{where}: choice values must be a list, got {values!r}")
  values = list(values)
  if not values:
    raise ProtocolError(f"{where}: choice has no values")
  for v in values:
    if not isinstance(v, _SCALAR_TYPES):
      raise ProtocolError(f"{where}: choice values must be numbers or strings, got {v!r}")
    if values.count(v) > 1:
      raise ProtocolError(f"{where}: choice lists {v!r} twice")


def _check_range(where: str, kind: str, spec: Mapping[str, Any]) -> None:
  low, high = spec["low"], spec["high"]
  for key, x in (("low", low), ("high", high)):
    if not _is_number(x):
      raise ProtocolError(f"{where}.{key} must be a finite number, got {x!r}")
    if kind == "int" and x != int(x):
      raise ProtocolError(f"{where}.{key} must be an integer for kind 'int', got {x!r}")
  if low > high:
    raise ProtocolError(f"{where}: low {low} > high {high}")
  if kind == "log" and low <= 0:
    raise ProtocolError(f"{where}: log range needs 0 < low, got low {low}")
  if kind == "log1m" and high >= 1:
    raise ProtocolError(f"{where}: log1m range needs high < 1, got high {high}")
  if kind == "int" and spec.get("log") and low < 1:
    raise ProtocolError(f"{where}: log-spaced int range needs low >= 1, got low {low}")


def _check_condition(space: Mapping[str, Any], name: str) -> None:
  cond = space[name].get("condition")
  if cond is None:
    return
  where = f"search_space.{name}.condition"
  if not isinstance(cond, Mapping) or not cond:
    raise ProtocolError(f"{where} must map a parameter name to a list of values")
  for target, allowed in cond.items():
    if target not in space:
      raise ProtocolError(f"{where} refers to missing parameter {target!r}")
    tspec = space[target]
    if tspec["kind"] not in ("choice", "fixed"):
      raise ProtocolError(f"{where}: {target!r} must be a choice or fixed parameter, "
                          f"not {tspec['kind']!r}")
    if isinstance(allowed, (str, bytes)) or not isinstance(allowed, Iterable) or not list(allowed):
      raise ProtocolError(f"{where}.{target} must be a non-empty list of values")
    takes = list(tspec["values"]) if tspec["kind"] == "choice" else [tspec["value"]]
    for v in allowed:
      if v not in takes:
        raise ProtocolError(f"{where} allows {target}={v!r}, which {target!r} never takes")


def _check_reparam(space: Mapping[str, Any], name: str) -> None:
  where = f"search_space.{name}"
  rp_name = space[name]["reparam"]
  if rp_name not in REPARAMS:
    raise ProtocolError(f"{where}: unknown reparam {rp_name!r}; "
                        f"known: {', '.join(sorted(REPARAMS))}")
  produced = {n for n in space if not space[n].get("reparam")}
  produced |= {REPARAMS[space[n]["reparam"]].output for n in space if space[n].get("reparam")}
  for use in REPARAMS[rp_name].uses:
    if use not in produced:
      raise ProtocolError(f"{where}: reparam {rp_name!r} needs {use!r} in the search space")
