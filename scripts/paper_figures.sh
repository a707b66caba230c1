#!/usr/bin/env bash
# Produce the results behind every paper figure at one scale, then draw them.
#
#   scripts/paper_figures.sh SCALE [WORKLOAD] [RESULTS_ROOT] [FIGURES_DIR]
#
# SCALE: smoke (seconds) | cpu (about 25 min in all on 2 cores with the default
# mnist1d_large_mlp; see paper_figures/README.md) | paper (the published settings: GPUs/TPUs; spread it
# with bench.run --shard=i/n in an array job). Re-running resumes: finished
# trials are never rerun. Extra bench.run flags can go in BENCH_FLAGS, e.g.
# BENCH_FLAGS="--executor=processes --num_workers=2".
set -euo pipefail
SCALE=${1:?usage: $0 smoke|cpu|paper [workload] [results_root] [figures_dir]}
WORKLOAD=${2:-mnist1d_large_mlp}
ROOT=${3:-runs/${SCALE}_${WORKLOAD}}
FIGS=${4:-paper_figures/${SCALE}_${WORKLOAD}}

python -m bench.run --config="protocols/experiments/batch_scaling.py:${WORKLOAD},${SCALE}" \
  --output_dir="${ROOT}/batch_scaling" ${BENCH_FLAGS:-}
python -m bench.run --config="protocols/experiments/optimizer_ranking.py:${WORKLOAD},${SCALE}" \
  --output_dir="${ROOT}/optimizer_ranking" ${BENCH_FLAGS:-}
python -m bench.run --config="protocols/experiments/variance.py:${WORKLOAD},${SCALE}" \
  --output_dir="${ROOT}/variance" ${BENCH_FLAGS:-}

for fig in shallue_fig1 shallue_fig8 shallue_fig11 playbook_isolation; do
  python -m paper_figures.${fig} --results_dir="${ROOT}/batch_scaling" --out="${FIGS}/${fig}.png"
done
for fig in choi_fig3 choi_fig4; do
  python -m paper_figures.${fig} --results_dir="${ROOT}/optimizer_ranking" --out="${FIGS}/${fig}.png"
done
python -m paper_figures.playbook_axis --results_dir="${ROOT}/batch_scaling" --out="${FIGS}/playbook_axis.png"
python -m paper_figures.best_of_k --results_dir="${ROOT}/optimizer_ranking" --out="${FIGS}/best_of_k.png"
for exp in batch_scaling optimizer_ranking variance; do
  python -m analysis.report --results_dir="${ROOT}/${exp}" --out="${ROOT}/report_${exp}"
done
