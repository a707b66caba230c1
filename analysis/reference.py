"""Where the published reference runs live: shared/reference/ next to the checkout.

The project's shared folder beside the repository root holds the DeepOBS
baselines table (deepobs_baselines_runs.csv.gz; $OPTBENCH_DEEPOBS_CSV), the
AlgoPerf v0.5 development subset (algoperf_v05_dev/: README.md, expected.json,
logs.tar.xz; $OPTBENCH_ALGOPERF_V05_DEV) and the published AlgoPerf v0.6 logs
(algoperf_v06/: README.md with the published scores, logs.tar.xz;
$OPTBENCH_ALGOPERF_V06). Each environment variable, where set, replaces its
default path. Standard library only.
"""
from __future__ import annotations

import os

FOLDER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "shared", "reference")
# The released runs (fsschneider/DeepOBS_Baselines, MIT).
DEEPOBS_CSV = (os.environ.get("OPTBENCH_DEEPOBS_CSV")
               or os.path.join(FOLDER, "deepobs_baselines_runs.csv.gz"))
ALGOPERF_V05_DEV = (os.environ.get("OPTBENCH_ALGOPERF_V05_DEV")
                    or os.path.join(FOLDER, "algoperf_v05_dev"))
ALGOPERF_V06 = os.environ.get("OPTBENCH_ALGOPERF_V06") or os.path.join(FOLDER, "algoperf_v06")
