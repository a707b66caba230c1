"""`python -m analysis.algoperf`: the command of analysis.algoperf.command."""
from absl import app

from analysis import cli
from analysis.algoperf import command

__doc__ = command.__doc__  # absl's --help prints the main module's docstring

command.define_flags()
app.run(command.main, flags_parser=cli.parse_flags)
