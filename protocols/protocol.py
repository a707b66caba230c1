"""Protocols: search space + sampler + budget + objective + seeds, as one ConfigDict.

The tuning protocol is part of an algorithm's definition (Choi et al. 2019), so it is plain
data that can be printed, diffed, hashed and stored beside its results:

  name          str, e.g. 'shallue', 'choi_all'
  search_space  param name -> spec (see protocols.search_space)
  sampler       name: quasi_random | random | grid | bayesian
                grid: num_per_dim (int) and/or values: {param: [values]}
                bayesian: num_startup (quasi-random warm-start trials, default 10)
  budget        num_trials (>= 1), train_steps (None: the workload's default),
                eval_every (None: the runner's default), num_studies (>= 1),
                rerun_best_seeds (extra seeds for the best point, >= 0)
  objective     name: steps_to_goal | best_validation; metric, e.g. 'error' (lower is
                better; selection is on validation, the best trial's test metric reported)
  seeds         study_seed (study i of num_studies uses study_seed + i)
  source        one line: where the protocol comes from

Points depend only on (search_space, sampler, study seed): changing the name, budget or
objective, e.g. extending a study from 20 to 40 trials, keeps the points already drawn.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

import ml_collections
from ml_collections import config_dict
import numpy as np

from bench import optimizers, schedules
from protocols import samplers
from protocols import search_space as ss
from protocols.search_space import ProtocolError

OBJECTIVES = ("steps_to_goal", "best_validation")
FIELDS = {
    "protocol": ("name", "search_space", "sampler", "budget", "objective", "seeds", "source"),
    "budget": ("num_trials", "train_steps", "eval_every", "num_studies", "rerun_best_seeds"),
    "objective": ("name", "metric"),
    "seeds": ("study_seed",),
}


def make(name: str, search_space: Mapping[str, Mapping[str, Any]], *, num_trials: int,
         sampler: str = "quasi_random", train_steps: int | None = None,
         eval_every: int | None = None, num_studies: int = 1, rerun_best_seeds: int = 0,
         objective: str = "best_validation", metric: str = "error", study_seed: int = 0,
         source: str = "", **sampler_fields: Any) -> ml_collections.ConfigDict:
  """A complete protocol ConfigDict (every field present, so printouts are complete).

  Unset train_steps / eval_every are typed placeholders, so `--config.budget.train_steps=`
  overrides work from the command line.
  """
  if sampler == "bayesian":
    sampler_fields.setdefault("num_startup", samplers.DEFAULT_NUM_STARTUP)
  return ml_collections.ConfigDict({
      "name": name,
      "search_space": {k: dict(v) for k, v in search_space.items()},
      "sampler": {"name": sampler, **sampler_fields},
      "budget": {
          "num_trials": num_trials,
          "train_steps": _optional_int(train_steps),
          "eval_every": _optional_int(eval_every),
          "num_studies": num_studies,
          "rerun_best_seeds": rerun_best_seeds,
      },
      "objective": {"name": objective, "metric": metric},
      "seeds": {"study_seed": study_seed},
      "source": source,
  })


def _optional_int(x: int | None) -> Any:
  return config_dict.placeholder(int) if x is None else x


# --- Canonical form and hashes. ----------------------------------------------------------

def as_plain(obj: Any) -> Any:
  """Plain python data (dicts, lists, scalars) from a ConfigDict or mapping."""
  if isinstance(obj, ml_collections.ConfigDict):
    obj = obj.to_dict()
  if isinstance(obj, config_dict.FieldReference):
    obj = obj.get()
  if isinstance(obj, Mapping):
    return {str(k): as_plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [as_plain(v) for v in obj]
  if isinstance(obj, np.generic):
    return obj.item()
  return obj


def _digest(obj: Any) -> str:
  try:
    text = json.dumps(as_plain(obj), sort_keys=True, separators=(",", ":"))
  except TypeError as e:
    raise ProtocolError(f"protocol holds a value that is not plain data: {e}") from None
  return hashlib.sha256(text.encode()).hexdigest()


def protocol_hash(protocol: Any) -> str:
  """12 hex digits of the sha256 of the canonical JSON (sorted keys): the same for any key
  order, different for any change of content."""
  return _digest(protocol)[:12]


# Budget fields a study may change and stay the same study: it keeps its finished
# trials and adds (or stops short of) the new ones.
EXTENDABLE = ("num_trials", "num_studies", "rerun_best_seeds")


def identity(protocol: Any) -> dict[str, Any]:
  """The protocol as plain data without its extendable budget fields."""
  p = as_plain(protocol)
  return {**p, "budget": {k: v for k, v in p["budget"].items() if k not in EXTENDABLE}}


def identity_hash(protocol: Any) -> str:
  """12 hex digits naming what a study's trials compute: protocol_hash of
  identity(), so extending a study from 20 to 40 trials keeps its hash, its
  trial seeds and its finished trials."""
  return _digest(identity(protocol))[:12]


def changes(old: Any, new: Any, limit: int = 3) -> list[str]:
  """'path: old -> new' for the first `limit` leaves where two protocols differ."""
  out: list[str] = []

  def walk(a: Any, b: Any, path: str) -> None:
    if len(out) >= limit:
      return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      for k in sorted(set(a) | set(b)):
        walk(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}" if path else str(k))
    elif a != b:
      out.append(f"{path}: {a!r} -> {b!r}")

  walk(as_plain(old), as_plain(new), "")
  return out


def sampling_hash(protocol: Any) -> str:
  """The hash of what determines the points: search_space and sampler only."""
  p = as_plain(protocol)
  return _digest({"search_space": p["search_space"], "sampler": p["sampler"]})[:12]


def sampler_seed(protocol: Any, study_seed: int) -> int:
  """The sampler's seed for one study: from the study seed and the sampling hash, so
  studies differ from each other and protocols from each other."""
  text = f"{sampling_hash(protocol)}:{int(study_seed)}"
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def study_seeds(protocol: Any) -> list[int]:
  """The seeds of the protocol's num_studies studies."""
  p = as_plain(protocol)
  base = p["seeds"]["study_seed"]
  return [base + i for i in range(p["budget"]["num_studies"])]


# --- Points. ----------------------------------------------------------------------------

def sample_points(protocol: Any, study_seed: int, num: int,
                  history: samplers.History = ()) -> list[dict[str, Any]]:
  """The first `num` points of the study with seed `study_seed`.

  Each point is a plain dict {hyperparameter: value} with conditions applied (inactive
  parameters absent) and reparameterisations resolved; it holds 'optimizer' when the
  space does. Deterministic given (protocol, study_seed); the first n points never
  depend on num. `history` ((point, objective value or None for failed), in trial
  order) is read by the adaptive 'bayesian' sampler only; see samplers.bayesian_points.
  """
  validate(protocol)
  if isinstance(num, bool) or not isinstance(num, int) or num < 0:
    raise ProtocolError(f"number of points must be an integer >= 0, got {num!r}")
  p = as_plain(protocol)
  space, sampler = p["search_space"], p["sampler"]
  if sampler["name"] == "grid":
    points = samplers.grid_points(space, sampler)
    if num > len(points):
      raise ProtocolError(f"the grid has {len(points)} points, {num} were asked for")
    return points[:num]
  seed = sampler_seed(p, study_seed)
  if sampler["name"] == "bayesian":
    return samplers.bayesian_points(space, sampler, seed, num, history)
  return samplers.unit_points(space, sampler["name"], num, seed)


def grid_size(protocol: Any) -> int:
  """The number of distinct points of a grid protocol."""
  p = as_plain(protocol)
  return len(samplers.grid_points(p["search_space"], p["sampler"]))


# --- Validation. --------------------------------------------------------------------------

def validate(protocol: Any) -> None:
  """Raises ProtocolError, with one line naming the problem, before any compute."""
  p = as_plain(protocol)
  _check_fields(p, "protocol")
  if not isinstance(p["name"], str) or not p["name"]:
    raise ProtocolError(f"protocol.name must be a non-empty string, got {p['name']!r}")
  if not isinstance(p["source"], str):
    raise ProtocolError(f"protocol.source must be a string, got {p['source']!r}")
  ss.check_specs(p["search_space"])
  _check_optimizer_names(p["search_space"])  # before conditions that name optimizers
  ss.check_links(p["search_space"])
  _check_hyperparameters(p["search_space"])
  _check_budget(p["budget"])
  _check_objective(p["objective"])
  _check_fields(p["seeds"], "seeds")
  _check_int(p["seeds"]["study_seed"], "seeds.study_seed", minimum=None)
  _check_sampler(p)


def _check_fields(d: Any, where: str) -> None:
  fields = FIELDS[where]
  if not isinstance(d, Mapping):
    raise ProtocolError(f"{where} must be a mapping with fields {', '.join(fields)}")
  for f in fields:
    if f not in d:
      raise ProtocolError(f"{where} has no field {f!r}")
  extra = sorted(set(d) - set(fields))
  if extra:
    raise ProtocolError(f"{where}: unknown field {extra[0]!r} (fields: {', '.join(fields)})")


def _check_int(x: Any, where: str, minimum: int | None, optional: bool = False) -> None:
  if optional and x is None:
    return
  if isinstance(x, bool) or not isinstance(x, int) or (minimum is not None and x < minimum):
    bound = f" >= {minimum}" if minimum is not None else ""
    raise ProtocolError(f"{where} must be an integer{bound}{' or None' if optional else ''}, "
                        f"got {x!r}")


def _check_budget(budget: Any) -> None:
  _check_fields(budget, "budget")
  _check_int(budget["num_trials"], "budget.num_trials", 1)
  _check_int(budget["train_steps"], "budget.train_steps", 1, optional=True)
  _check_int(budget["eval_every"], "budget.eval_every", 1, optional=True)
  _check_int(budget["num_studies"], "budget.num_studies", 1)
  _check_int(budget["rerun_best_seeds"], "budget.rerun_best_seeds", 0)


def _check_objective(objective: Any) -> None:
  _check_fields(objective, "objective")
  if objective["name"] not in OBJECTIVES:
    raise ProtocolError(f"objective.name: unknown objective {objective['name']!r}; "
                        f"known: {', '.join(OBJECTIVES)}")
  if not isinstance(objective["metric"], str) or not objective["metric"]:
    raise ProtocolError(f"objective.metric must be a metric name, got {objective['metric']!r}")


def _check_sampler(p: Mapping[str, Any]) -> None:
  sampler = p["sampler"]
  if not isinstance(sampler, Mapping) or "name" not in sampler:
    raise ProtocolError(f"sampler must be a mapping with a 'name' ({', '.join(samplers.SAMPLERS)})")
  name = sampler["name"]
  if name not in samplers.SAMPLERS:
    raise ProtocolError(f"sampler.name: unknown sampler {name!r}; "
                        f"known: {', '.join(samplers.SAMPLERS)}")
  allowed = samplers.SAMPLER_FIELDS[name] | {"name"}
  extra = sorted(set(sampler) - allowed)
  if extra:
    raise ProtocolError(f"sampler: unknown field {extra[0]!r} for sampler {name!r} "
                        f"(fields: {', '.join(sorted(allowed))})")
  if name == "bayesian" and "num_startup" in sampler:
    _check_int(sampler["num_startup"], "sampler.num_startup", 0)
  if name == "grid":
    size = len(samplers.grid_points(p["search_space"], sampler))
    if size != p["budget"]["num_trials"]:
      raise ProtocolError(f"the grid has {size} points but budget.num_trials is "
                          f"{p['budget']['num_trials']}; set num_trials={size}")


# --- Optimizer-aware checks, against bench's optimizer registry (a leaf module). ---------

def _check_optimizer_names(space: Mapping[str, Any]) -> None:
  _optimizer_values(space, optimizers.REGISTRY)


def _check_hyperparameters(space: Mapping[str, Any]) -> None:
  """Every hyperparameter a point can hold is taken by the optimizer it goes with."""
  registry = optimizers.REGISTRY
  takes = {o: set(s.defaults) | set(schedules.SCHEDULE_HPARAMS) for o, s in registry.items()}
  opts = _optimizer_values(space, registry)
  _check_schedule(space, schedules.SCHEDULES)
  for name in ss.names(space):
    if name == "optimizer":
      continue
    hp = _hyperparameter(space, name)
    label = f"search_space.{name}" + (f" (sets {hp!r})" if hp != name else "")
    if opts is None:
      if not any(hp in t for t in takes.values()):
        raise ProtocolError(f"{label}: no optimizer takes a hyperparameter {hp!r}")
      continue
    takers = [o for o in opts if hp in takes[o]]
    if not takers:
      raise ProtocolError(f"{label}: no optimizer in the space ({', '.join(opts)}) takes {hp!r}")
    wrong = [o for o in opts if _may_apply(space, name, o) and hp not in takes[o]]
    if wrong:
      raise ProtocolError(f"{label} applies to optimizer {wrong[0]!r}, which does not take it; "
                          f"add condition {{'optimizer': {takers}}}")
  _check_reparam_coverage(space, opts)


def _optimizer_values(space: Mapping[str, Any], registry: Mapping[str, Any]) -> list[str] | None:
  spec = space.get("optimizer")
  if spec is None:
    return None
  if spec["kind"] not in ("choice", "fixed") or spec.get("condition") or spec.get("reparam"):
    raise ProtocolError("search_space.optimizer must be an unconditional choice or fixed parameter")
  values = list(spec["values"]) if spec["kind"] == "choice" else [spec["value"]]
  for v in values:
    if v not in registry:
      raise ProtocolError(f"search_space.optimizer: unknown optimizer {v!r}; "
                          f"known: {', '.join(registry)}")
  return values


def _check_schedule(space: Mapping[str, Any], known: Sequence[str]) -> None:
  spec = space.get("schedule")
  if spec is None or spec["kind"] not in ("choice", "fixed"):
    return
  for v in (spec["values"] if spec["kind"] == "choice" else [spec["value"]]):
    if v not in known:
      raise ProtocolError(f"search_space.schedule: unknown schedule {v!r}; "
                          f"known: {', '.join(known)}")


def _hyperparameter(space: Mapping[str, Any], name: str) -> str:
  rp = space[name].get("reparam")
  return ss.REPARAMS[rp].output if rp else name


def _may_apply(space: Mapping[str, Any], name: str, optimizer: str | None) -> bool:
  """Whether parameter `name` can be present in a point whose optimizer is `optimizer`."""
  for target, allowed in ss.condition_of(space[name]).items():
    if target == "optimizer":
      if optimizer is not None and optimizer not in allowed:
        return False
      continue
    tspec = space[target]
    if tspec["kind"] == "fixed" and tspec["value"] not in allowed:
      return False
    if not _may_apply(space, target, optimizer):
      return False
  return True


def _check_reparam_coverage(space: Mapping[str, Any], opts: list[str] | None) -> None:
  """A reparam's inputs exist wherever it applies, and no two parameters set one
  hyperparameter in the same point."""
  for name in ss.names(space):
    rp_name = space[name].get("reparam")
    if not rp_name:
      continue
    rp = ss.REPARAMS[rp_name]
    for opt in (opts if opts is not None else [None]):
      if not _may_apply(space, name, opt):
        continue
      where = f"search_space.{name}" + (f" (optimizer {opt!r})" if opt else "")
      clash = [n for n in ss.names(space) if n != name and _hyperparameter(space, n) == rp.output
               and _may_apply(space, n, opt)]
      if clash:
        raise ProtocolError(f"{where} and search_space.{clash[0]} both set {rp.output!r}")
      for use in rp.uses:
        if not any(_hyperparameter(space, n) == use and _may_apply(space, n, opt)
                   for n in ss.names(space) if n != name):
          raise ProtocolError(f"{where}: reparam {rp_name!r} needs {use!r}, which is absent there")

