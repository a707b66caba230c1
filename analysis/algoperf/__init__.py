"""AlgoPerf: its published logs read, scored by its official rule, and reported.

Layers, each importing only those before it: versions (targets, budgets,
held-out rules, tie rules per version) < logs (the trial-log layout) < results
(the logs as the harness's generic trials and curves tables) < scoring (the
official rule, on analysis.profiles' kernel) < store (a harness store as the
scorer's input) < command (score_logs / score_store and the printed and written
report; `python -m analysis.algoperf`) < rankings (the steps-vs-seconds and
budget rankings of scored logs).
"""
from analysis.algoperf.command import (FIGURE, ScoreError, Scored, baseline_name, by_tie_rule,
                                       get_version, resolve_logs, run, score_logs, score_store,
                                       summary)

__all__ = ["FIGURE", "ScoreError", "Scored", "baseline_name", "by_tie_rule", "get_version",
           "resolve_logs", "run", "score_logs", "score_store", "summary"]
