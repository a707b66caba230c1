"""Tuning playbook: hyperparameter axis plot with the boundary check.

Score vs each searched hyperparameter for one study (--study, default: the
first study whose best trials sit at a search-space edge, else the first)."""
from absl import flags

from analysis import figure_data, playbook, plots
from paper_figures import common

_STUDY = flags.DEFINE_string("study", None, "study_id to draw (default: see module doc).")


def make(ctx, out):
  checked = {}
  for sid, g in ctx.trials.groupby("study_id", sort=True):
    if len(playbook.scored_trials(g, figure_data.SCORE)) >= 3:
      checked[sid] = (g, playbook.boundary_check(g, score_col=figure_data.SCORE,
                                                 space=ctx.spaces.get(str(sid))))
  checked = {k: v for k, v in checked.items() if not v[1].empty}
  if not checked:
    raise figure_data.NotApplicable("no study with three scored trials and a numeric hyperparameter")
  sid = _STUDY.value or next((k for k, (_, bc) in checked.items() if bc["flagged"].any()),
                             next(iter(checked)))
  if sid not in checked:
    raise figure_data.NotApplicable(f"study {sid!r} not found or has too few trials")
  g, bc = checked[sid]
  plots.axis_plot(g, out, score_col=figure_data.SCORE, space=ctx.spaces.get(str(sid)), boundary=bc,
                  title=f"{sid}: score vs hyperparameters", ylabel=figure_data.score_label(g))
  return bc


if __name__ == "__main__":
  common.run(make, "playbook axis plot")
