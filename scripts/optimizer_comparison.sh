#!/usr/bin/env bash
# Today's optimizers vs the 2019 set (protocols/experiments/optimizer_comparison.py) on the
# embedded MNIST-1D MLP and byte-level LM, then their figures and reports.
#
#   scripts/optimizer_comparison.sh SCALE [RESULTS_ROOT] [FIGURES_DIR]
#
# SCALE: smoke (seconds) | cpu (about 50 min on 2 cores, both workloads) | paper.
# Re-running resumes. Extra bench.run flags can go in BENCH_FLAGS.
set -euo pipefail
SCALE=${1:?usage: $0 smoke|cpu|paper [results_root] [figures_dir]}
ROOT=${2:-runs/${SCALE}_optimizer_comparison}
FIGS=${3:-paper_figures/${SCALE}_optimizer_comparison}

for w in ${WORKLOADS:-mnist1d_mlp stdlib_lm}; do
  python -m bench.run --config="protocols/experiments/optimizer_comparison.py:${w},${SCALE}" \
    --output_dir="${ROOT}/${w}" ${BENCH_FLAGS:-}
  python -m paper_figures.choi_fig3 --results_dir="${ROOT}/${w}" --out="${FIGS}/${w}_ranking.png"
  python -m paper_figures.ranking_vs_budget --results_dir="${ROOT}/${w}" \
    --out="${FIGS}/${w}_ranking_vs_budget.png"
  python -m paper_figures.steps_vs_clock --results_dir="${ROOT}/${w}" \
    --out="${FIGS}/${w}_steps_vs_clock.png" || [ "${SCALE}" = smoke ]  # smoke: no goal reached
  python -m analysis.report --results_dir="${ROOT}/${w}" --out="${ROOT}/report_${w}"
done
