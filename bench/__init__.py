"""How to run: trial settings, the train loop, packs, studies, executors, the
results store and the command-line entry points (`python -m bench.run`,
`bench.train`, `bench.status`, `bench.perf`).

Layers, each importing only those before it (tests/test_layering.py):
  leaves      settings, schedules, optimizers (+ optimizer_rules, preconditioners),
              store, userfiles, progress: no other part of the project (protocols
              may use the first four)
  one trial   program, loop, checkpoint, events, data, parallel, trial, packing
  a study     study (identity, ids, seeds, the trials its points become)
              recipe (recipe files, paths, the --config flag) | runner (locks, progress)
  driver      experiment: checks, store creation and the run, for every entry point
  commands    run, train, status, perf, ray_executor
"""
import sys as _sys

if _sys.argv[:1] == ["-m"]:  # Python is starting one of bench's modules: take signals now
  from analysis import interrupts as _interrupts
  _interrupts.install()
