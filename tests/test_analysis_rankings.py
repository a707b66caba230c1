"""Rankings per protocol and Choi et al.'s inclusion check."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.rankings import INCLUSIONS, inclusion_check, optimizer_scores, ranking_table


def _trials(spec, protocol="wide", workload="w"):
  """spec: optimizer -> list of (val, test, status)."""
  rows = []
  for opt, trials in spec.items():
    for i, (val, test, status) in enumerate(trials):
      rows.append({"trial_id": f"{protocol}/{opt}/{i}", "study_id": f"{protocol}/{opt}",
                   "workload": workload, "protocol_name": protocol, "optimizer": opt,
                   "trial_index": i, "status": status, "goal_metric": "error",
                   "best/val/error": val, "best/test/error": test})
  return pd.DataFrame(rows)


def _spread(center, n=8, ok="ok"):
  return [(center + 0.002 * i, center + 0.01 + 0.002 * i, ok) for i in range(n)]


def test_inclusions_are_choi_et_al():
  assert ("sgd", "momentum") in INCLUSIONS and ("momentum", "rmsprop") in INCLUSIONS
  assert ("momentum", "adam") in INCLUSIONS and ("nesterov", "nadam") in INCLUSIONS
  assert ("sgd", "nadam") in INCLUSIONS  # transitive
  assert ("adam", "sgd") not in INCLUSIONS and ("momentum", "nadam") not in INCLUSIONS


def test_scores_and_ranking():
  trials = _trials({"sgd": _spread(0.10), "momentum": _spread(0.08),
                    "adam": [(0.05, 0.07, "ok"), (0.01, 0.2, "diverged")] + _spread(0.06)})
  scores = optimizer_scores(trials).set_index("optimizer")
  assert scores.loc["sgd", "best_val"] == pytest.approx(0.10)
  assert scores.loc["sgd", "test_at_best"] == pytest.approx(0.11)
  # The diverged adam trial (val 0.01) does not count; the 0.05 one is selected.
  assert scores.loc["adam", "best_val"] == pytest.approx(0.05)
  assert scores.loc["adam", "test_at_best"] == pytest.approx(0.07)
  assert scores.loc["adam", "n_diverged"] == 1
  # 8 trials: one-sided, the third best bounds the rerun median best (P(Bin(8, .083) <= 2)
  # = 0.98 >= 0.9 > P(<= 1) = 0.86); adam's 9 trials include a diverged one (+inf, last).
  assert (scores["val_sides"] == "upper").all() and scores["val_lo"].isna().all()
  assert scores.loc["sgd", "val_hi"] == pytest.approx(0.104)
  assert scores.loc["adam", "val_hi"] == pytest.approx(0.062)
  ranks = ranking_table(scores.reset_index())
  assert ranks.loc[("w", "wide")].to_dict() == {"adam": 1.0, "momentum": 2.0, "sgd": 3.0}


def test_inclusion_check_flags_planted_violation():
  wide = _trials({"sgd": _spread(0.10), "momentum": _spread(0.20), "adam": _spread(0.05)})
  narrow = _trials({"sgd": _spread(0.10), "momentum": _spread(0.09), "adam": _spread(0.05)},
                   protocol="narrow")
  scores = optimizer_scores(pd.concat([wide, narrow]))
  bad = inclusion_check(scores)
  assert len(bad) == 1
  row = bad.iloc[0]
  assert (row["protocol_name"], row["special"], row["general"]) == ("wide", "sgd", "momentum")
  assert row["gap"] == pytest.approx(0.10)
  assert row["relative_gap"] == pytest.approx(1.0)
  # All 8 sgd trials beat every momentum trial: p = C(8,8)/C(16,8) = 1/12870.
  assert row["tail_count"] == 8 and row["p_value"] == pytest.approx(1 / 12870)
  assert row["beyond_noise"]
  every = inclusion_check(scores, all_pairs=True)
  # sgd<=momentum, sgd<=adam, momentum<=adam per protocol
  assert len(every) == 6 and every["violated"].sum() == 1
  # Within tolerance: no violation reported.
  assert inclusion_check(scores, tolerance=0.2).empty


def test_inclusion_check_names_and_noise():
  # Names from other tools are mapped; a small gap that one trial makes is flagged
  # but marked as within the noise: p = C(2,1)/C(4,1) = 0.5.
  trials = _trials({"GradientDescentOptimizer": [(0.100, 0.1, "ok"), (0.300, 0.3, "ok")],
                    "MomentumOptimizer": [(0.101, 0.1, "ok"), (0.300, 0.3, "ok")]})
  scores = optimizer_scores(trials)
  bad = inclusion_check(scores)
  assert list(bad["special"]) == ["sgd"] and list(bad["general"]) == ["momentum"]
  assert bad["tail_count"].iloc[0] == 1 and bad["p_value"].iloc[0] == 0.5
  assert not bad["beyond_noise"].iloc[0]
  assert np.isclose(bad["gap"].iloc[0], 0.001)


def test_ranking_plot_names_violations_under_their_own_panel(tmp_path, monkeypatch):
  from analysis import plots
  from analysis.plots import base
  wide = _trials({"sgd": _spread(0.10), "momentum": _spread(0.20), "adam": _spread(0.05)})
  narrow = _trials({"sgd": _spread(0.10), "momentum": _spread(0.09)}, protocol="narrow")
  scores = optimizer_scores(pd.concat([wide, narrow]))
  figs = []
  save = base.save_png
  monkeypatch.setattr(base, "save_png", lambda fig, path, **kw: figs.append(fig) or save(fig, path, **kw))
  plots.ranking_plot(scores, tmp_path / "r.png",
                     inclusion=inclusion_check(scores, all_pairs=True))
  labels = {ax.get_title(): ax.get_xlabel() for ax in figs[0].axes if ax.get_title()}
  assert labels == {"w / narrow": "", "w / wide": "violated: sgd⊆momentum"}
  assert (tmp_path / "r.png").stat().st_size > 0


def test_inclusion_verdicts_per_protocol_say_what_is_beyond_noise():
  from analysis import playbook
  pairs = pd.DataFrame({
      "protocol_name": ["choi_all", "choi_all", "choi_lr"],
      "special": ["sgd", "momentum", "sgd"], "general": ["momentum", "adam", "adam"],
      "violated": [True, True, False], "beyond_noise": [True, False, False]})
  lines = playbook.inclusion_verdicts(pairs, ["workload", "protocol_name"])
  assert lines == [
      "choi_all: 2 of 2 pairs violated (momentum ⊆ adam, sgd ⊆ momentum); 1 beyond noise "
      "(sgd ⊆ momentum; tail-count permutation test, p <= 0.1) — the protocol under-tunes "
      "the general optimizer there",
      "choi_lr: all 1 pairs consistent (no general optimizer did worse than one it includes)"]
  within = playbook.inclusion_verdict(pairs.iloc[1:2])
  assert within.endswith("none beyond noise (tail-count permutation test, p > 0.1): within "
                         "the noise of the search")


def test_rank_changes_across_protocols_only_beyond_noise():
  from analysis.rankings import protocol_rank_changes
  # narrow: sgd's 8 trials all beat adam's; wide: adam's all beat sgd's -> a change.
  narrow = _trials({"sgd": _spread(0.05), "adam": _spread(0.20)}, protocol="narrow")
  wide = _trials({"sgd": _spread(0.20), "adam": _spread(0.05)}, protocol="wide")
  moves = protocol_rank_changes(optimizer_scores(pd.concat([narrow, wide])))
  assert len(moves) == 1
  row = moves.iloc[0]
  assert (row["ahead_first"], row["behind_first"]) == ("sgd", "adam")
  assert (row["protocol_first"], row["protocol_then"]) == ("narrow", "wide")
  assert row["p_first"] == pytest.approx(1 / 12870) and row["p_then"] == pytest.approx(1 / 12870)
  # Interleaved scores: the point ranks swap, but no order is beyond noise.
  a = [(0.100 + 0.01 * i, 0.1, "ok") for i in range(8)]
  b = [(0.105 + 0.01 * i, 0.1, "ok") for i in range(8)]
  swapped = pd.concat([_trials({"sgd": a, "adam": b}, protocol="narrow"),
                       _trials({"sgd": b, "adam": a}, protocol="wide")])
  scores = optimizer_scores(swapped)
  ranks = ranking_table(scores)
  assert ranks.loc[("w", "narrow"), "sgd"] == 1 and ranks.loc[("w", "wide"), "adam"] == 1
  assert protocol_rank_changes(scores).empty
