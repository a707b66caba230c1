"""How many trials to pack into one program: `--pack=off|K|auto`.

Packing pays where one trial leaves the device idle (small models, small
batches on a GPU) and loses where the backend runs batched kernels no better
than single ones. On CPUs `auto` follows a measured rule: no packing. There a
small MLP's packed dispatch ran at 0.9-1.4x solo, but whole packed studies at
0.9-1.0x of unpacked ones once the packed programs' compilation is paid (the
probe alone cost more than it saved), and vmapped convolutions ran 3-7x slower
(BENCHMARKS.md); unpacked, CPU results also stay bitwise reproducible. On
accelerators `auto` measures: it times a short dispatch solo and packed at
growing K (stopping once K stops paying) and packs only if a pack beats solo
by PACK_MARGIN in trial-steps/s. The decision is remembered per host in
~/.cache/optbench/packing/<host>.json (OPTBENCH_PACKING_CACHE moves it),
keyed by workload, optimizer structure, batch size, backend, device kind and
count, and jax version; the probe's programs are the ones the study then uses.
`--pack=K` packs on any backend.
"""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Callable

import jax
import numpy as np

from bench import loop, program as program_lib, store

SOLO = 1  # pack size of a trial run alone (its program is the unbatched one: lanes=0)
PACK_MARGIN = 1.1     # a pack must beat solo by this factor to be chosen
PROBE_REPEATS = 3


def parse(pack: str | int) -> str | int:
  """'off' -> 1, 'auto' -> 'auto', 'K' / K -> K >= 1; anything else: ValueError."""
  if isinstance(pack, int) and not isinstance(pack, bool):
    value = pack
  elif isinstance(pack, str) and pack.strip().lower() in ("off", "auto"):
    return SOLO if pack.strip().lower() == "off" else "auto"
  else:
    try:
      value = int(str(pack))
    except ValueError:
      raise ValueError(f"pack must be auto, off or a positive integer, got {pack!r}") from None
  if value < 1:
    raise ValueError(f"pack must be auto, off or a positive integer, got {pack!r}")
  return value


def candidates(backend: str) -> list[int]:
  """Pack sizes the probe tries in order (it stops at the first that does not pay)."""
  return [2, 4, 8] if backend == "cpu" else [2, 4, 8, 16, 32, 64, 128, 256]


def lanes_for(pack: str | int, prepared: Any, available: int,
              log: Callable[[str], None] = print) -> int:
  """How many lanes the trials like `prepared` (a bench.trial.PreparedTrial)
  run in, given `available` of them."""
  if pack == "auto":
    pack = decide(prepared, log=log)
  return max(1, min(int(pack), available))


def decision_key(prepared: Any) -> str:
  shape = prepared.shape()
  devices = program_lib.parallel.mesh().devices.flat
  kinds = sorted({d.device_kind for d in devices})
  return json.dumps({"workload": shape.workload_key, "optimizer": list(shape.optimizer_key),
                     "batch_size": shape.batch_size, "eval_test": shape.eval_test,
                     "backend": jax.default_backend(), "devices": kinds,
                     "num_devices": len(shape.devices), "jax": jax.__version__},
                    sort_keys=True, default=str)


def cache_path() -> str:
  root = os.environ.get("OPTBENCH_PACKING_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "optbench", "packing")
  return os.path.join(root, f"{platform.node() or 'host'}.json")


def _load() -> dict[str, Any]:
  try:
    with open(cache_path()) as f:
      data = json.load(f)
    return data if isinstance(data, dict) else {}
  except (OSError, ValueError):
    return {}


def _remember(key: str, entry: dict[str, Any]) -> None:
  data = _load()
  data[key] = entry
  try:
    store.write_json_atomic(cache_path(), data)
  except OSError:
    pass  # read-only home: probe again next time


_DECIDED: dict[str, int] = {}


def decide(prepared: Any, log: Callable[[str], None] = print) -> int:
  """The pack size for trials like `prepared`: the CPU rule, remembered, or probed now."""
  if jax.default_backend() == "cpu" and not os.environ.get("OPTBENCH_PACK_PROBE_CPU"):
    return SOLO
  key = decision_key(prepared)
  if key in _DECIDED:
    return _DECIDED[key]
  entry = _load().get(key)
  if not (isinstance(entry, dict) and isinstance(entry.get("lanes"), int)):
    rates = probe(prepared)
    lanes = max(rates)  # the probe stops growing K once it no longer pays
    if len(rates) > 1 and rates[lanes] < PACK_MARGIN * rates[sorted(rates)[-2]]:
      lanes = sorted(rates)[-2]
    entry = {"lanes": lanes, "trial_steps_per_sec": {str(k): round(v, 1) for k, v in rates.items()},
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _remember(key, entry)
    ratio = rates[lanes] / rates[1]
    log(f"pack=auto: {prepared.workload.name} batch {prepared.settings.batch_size} on "
        f"{jax.default_backend()}: {'packs of ' + str(lanes) if lanes > 1 else 'no packing'} "
        f"({ratio:.2f}x solo; probed {', '.join(f'{k}: {v:.0f}' for k, v in rates.items())} "
        "trial-steps/s)")
  _DECIDED[key] = entry["lanes"]
  return entry["lanes"]


def probe(prepared: Any, steps: int | None = None) -> dict[int, float]:
  """Trial-steps/s of a short dispatch solo (1) and packed at growing K, each
  the median of PROBE_REPEATS timed runs after a compiling one. Stops at the
  first K that does not beat the previous one by PACK_MARGIN (or that runs out
  of memory): the last K it returns is then the one to pack in, unless its
  own rate is that first one that did not pay."""
  cfg = prepared.settings
  steps = steps or max(1, min(cfg.train_steps, cfg.eval_every, 50))
  rates = {1: _rate(prepared, 0, steps)}
  for k in candidates(jax.default_backend()):
    try:
      rates[k] = _rate(prepared, k, steps)
    except Exception as e:  # noqa: BLE001 - e.g. out of device memory: stop growing
      if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
        raise
      break
    if rates[k] < PACK_MARGIN * rates[sorted(rates)[-2]]:
      break
  return rates


def _rate(prepared: Any, lanes: int, steps: int) -> float:
  p = prepared
  prog = p.program(lanes)
  n = lanes or 1
  seeds = np.arange(n, dtype=np.int32) + p.spec.seed
  values = {k: np.stack([np.asarray(v)] * n) for k, v in p.values.items()}
  if not lanes:
    seeds, values = seeds[0], p.values
  carry, keys = prog.init(seeds, values)
  active = np.ones(n, bool)
  batches = None
  if not p.workload.in_memory:
    streams = [p.workload.stream("train", p.settings.batch_size, int(s))
               for s in np.atleast_1d(seeds)]
    per_lane = [loop.data_lib.stack_stream(s, steps) for s in streams]
    stacked = per_lane[0] if not lanes else {
        k: np.stack([b[k] for b in per_lane]) for k in per_lane[0]}
    batches = program_lib.parallel.put(stacked, prog.stream_sharding)
  times = []
  for _ in range(PROBE_REPEATS + 1):
    t0 = time.perf_counter()
    carry, losses = prog.chunk(carry, keys, 0, steps, active, batches)
    jax.block_until_ready(losses)
    times.append(time.perf_counter() - t0)
  return n * steps / float(np.median(times[1:]))
