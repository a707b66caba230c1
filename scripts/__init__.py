"""Launchers, benchmarks and the demo (`python -m scripts.demo`)."""
import sys as _sys

if _sys.argv[:1] == ["-m"]:  # Python is starting one of these modules: take signals now
  from analysis import interrupts as _interrupts
  _interrupts.install()
