"""What every command-line entry point of analysis/ and paper_figures/ shares."""
from __future__ import annotations

import sys

from absl import flags


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with a bad flag reported as one line (no usage dump)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
