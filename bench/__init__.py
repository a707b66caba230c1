"""How to run: trial settings, the train loop, packs, studies, executors, the
results store and the command-line entry points (`python -m bench.run`,
`bench.train`, `bench.status`, `bench.perf`)."""
import sys as _sys

if _sys.argv[:1] == ["-m"]:  # Python is starting one of bench's modules: take signals now
  from analysis import interrupts as _interrupts
  _interrupts.install()
