"""analysis/ reads stored results only: it must not pull in training code."""
from __future__ import annotations

import subprocess
import sys


def test_analysis_imports_no_training_stack():
  code = ("import sys, analysis, analysis.importers, analysis.algoperf, analysis.algoperf_store, "
          "analysis.budget_rankings, analysis.clock_rankings, analysis.algoperf_rankings; "
          "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
          "('jax', 'jaxlib', 'flax', 'optax', 'bench', 'workloads', 'tensorflow')); "
          "print(','.join(bad))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == ""
