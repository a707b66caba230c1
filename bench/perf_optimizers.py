"""`python -m bench.perf --optimizers=...`: each update rule's train step against SGD's.

Each rule at its default hyperparameters runs in the harness's own compiled train
program (bench.program: solo, what a trial runs, or a pack of K copies), on one
workload, batch size and device. Every program is compiled first; then `repeats`
rounds time one dispatch of `steps` steps of every rule in turn (so load on the
machine hits all alike), and each rule's step time is its median over the rounds,
as a ratio to SGD's in the same setting (SGD is measured whether named or not).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Iterator

from absl import app


def names(requested: list[str]) -> list[str]:
  """SGD first, then the rules named ('all': every registered one); unknown: one line."""
  from bench import optimizers
  out = list(optimizers.REGISTRY) if requested == ["all"] else list(requested)
  for n in out:
    optimizers.entry(n)
  return ["sgd"] + [n for n in out if n != "sgd"]


def step_times(workload: str, batch_size: int, steps: int, rules: list[str], *,
               repeats: int, lanes: int = 0, first_step: int = 0,
               data_dir: str | None = None, dtype: str = "float32",
               workload_args: str | None = None) -> dict[str, dict[str, Any]]:
  """Median seconds of a dispatch of `steps` train steps (step indices first_step, ...)
  of each rule, solo (lanes 0) or in a pack of `lanes` copies, timed round-robin."""
  import jax
  import numpy as np
  from bench import trial
  state = {}
  active = np.ones(max(lanes, 1), bool)
  for opt in rules:
    p = trial.prepare(trial.spec(workload, opt, {}, seed=0, batch_size=batch_size,
                                 train_steps=steps, eval_every=steps, data_dir=data_dir,
                                 dtype=dtype, workload_args=workload_args))
    if not p.workload.in_memory:
      raise app.UsageError(f"{workload} streams its data; --optimizers measures in-memory "
                           "workloads")
    prog = p.program(lanes)
    seeds, values = np.int32(p.spec.seed), p.values
    if lanes:
      seeds = np.arange(lanes, dtype=np.int32)
      values = {k: np.stack([np.asarray(v)] * lanes) for k, v in values.items()}
    carry, keys = prog.init(seeds, values)
    t0 = time.perf_counter()
    carry, losses = prog.chunk(carry, keys, first_step, first_step + steps, active)  # compiles
    jax.block_until_ready(losses)
    state[opt] = [prog, carry, keys, losses]
    print(f"  {opt}: compiled and ran in {time.perf_counter() - t0:.1f} s", flush=True)
  times: dict[str, list[float]] = {opt: [] for opt in rules}
  for _ in range(repeats):
    for opt in rules:
      prog, carry, keys, _ = state[opt]
      t0 = time.perf_counter()
      carry, losses = prog.chunk(carry, keys, first_step, first_step + steps, active)
      jax.block_until_ready(losses)
      times[opt].append(time.perf_counter() - t0)
      state[opt][1], state[opt][3] = carry, losses
  return {opt: {"seconds": statistics.median(times[opt]),
                "trial_steps": steps * max(lanes, 1), "all_seconds": times[opt],
                "finite_loss": bool(np.isfinite(np.asarray(state[opt][3])).all())}
          for opt in rules}


def measure(workload: str, batch_size: int, steps: int, requested: list[str], *,
            repeats: int, lanes: int = 0, first_step: int = 0, **trial_args: Any
            ) -> Iterator[tuple[str, dict[str, Any], str, dict[str, Any]]]:
  """(mode, result, detail, extra fields) per rule: solo (`step_<name>`), then, with
  lanes > 0, in a pack (`step_<name>_pack<lanes>`, per lane); printed as a table."""
  rules = names(requested)
  for k in [0] + ([lanes] if lanes > 0 else []):
    results = step_times(workload, batch_size, steps, rules, repeats=repeats, lanes=k,
                         first_step=first_step, **trial_args)
    sgd = results["sgd"]["seconds"]
    print(f"  {f'pack of {k}, per lane' if k else 'solo':<20} {'ms/step':>8} {'x sgd':>6}")
    for opt, r in results.items():
      r["trial_steps_per_sec"] = r["trial_steps"] / r["seconds"]
      ratio = r["seconds"] / sgd
      per_step = r["seconds"] / steps / max(k, 1)
      print(f"  {opt:<20} {1e3 * per_step:8.3f} {ratio:6.2f}")
      detail = (f"{ratio:.2f}x sgd's step time ({1e3 * per_step:.3f} ms"
                + (f" per lane of {k}" if k else "") + f"); median of {repeats} dispatches "
                f"of {steps} steps" + (f" from step {first_step}" if first_step else "")
                + ("" if r["finite_loss"] else "; loss not finite at its defaults"))
      yield (f"step_{opt}" + (f"_pack{k}" if k else ""), r, detail,
             dict(optimizer=opt, vs_sgd=ratio, step_seconds=per_step, lanes=k,
                  first_step=first_step, all_seconds=r["all_seconds"],
                  finite_loss=r["finite_loss"]))
