"""Tuning playbook: isolation plot. Best score per value of a scientific
hyperparameter (--scientific, default: the first that varies), nuisance
hyperparameters optimised away, one-sided 90% upper bounds on a rerun's median
best (order statistics)."""
from absl import flags

from analysis import figure_data, playbook, plots
from paper_figures import common

_SCIENTIFIC = flags.DEFINE_string("scientific", None, "Column, e.g. sci/batch_size.")


def make(ctx, out):
  t = ctx.trials
  varying = figure_data.varying(t, figure_data.sci_columns(t))
  col = _SCIENTIFIC.value or (varying[0] if varying else None)
  if col is None or col not in t.columns:
    raise figure_data.NotApplicable("no scientific hyperparameter varies (give --scientific)")
  own = "optimizer" if col == "sci/optimizer" else None
  by = [c for c in figure_data.varying(t, ["workload", "optimizer", "protocol_name"]) if c != own]
  tab = playbook.isolation(t, scientific=col, score_col=figure_data.SCORE, by=by)
  plots.isolation_plot(tab, out, scientific=col, by=by,
                       note=figure_data.budget_note(t, col))
  return tab


if __name__ == "__main__":
  common.run(make, "playbook isolation plot")
