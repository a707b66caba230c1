"""One script per reproduced figure (`python -m paper_figures.<name>`)."""
import sys as _sys

if _sys.argv[:1] == ["-m"]:  # Python is starting one of these modules: take signals now
  from analysis import interrupts as _interrupts
  _interrupts.install()
