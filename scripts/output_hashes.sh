#!/usr/bin/env bash
# Regenerate every report.md, paper figure and AlgoPerf score table from fixed inputs and
# print one sha256 per output, so that a refactor can show its outputs are byte-identical:
# run it at the old commit and the new one on the same copy of the stores and diff the lists.
#
#   scripts/output_hashes.sh STORES OUT [SHARED]
#
# STORES holds cpu_mnist1d_large_mlp/{batch_scaling,optimizer_ranking,variance} and
# cpu_optimizer_comparison/{mnist1d_mlp,stdlib_lm} (scripts/paper_figures.sh cpu and
# scripts/optimizer_comparison.sh cpu write them under runs/). SHARED (default ../shared)
# gives the published DeepOBS and AlgoPerf runs; parts whose inputs are absent are skipped.
set -euo pipefail
STORES=${1:?usage: $0 STORES OUT [SHARED]}
OUT=${2:?usage: $0 STORES OUT [SHARED]}
SHARED=${3:-../shared}
mkdir -p "${OUT}"
export MPLBACKEND=Agg
q() { "$@" > /dev/null 2>&1 || echo "failed: $*" >&2; }

S=${STORES}/cpu_mnist1d_large_mlp
if [ -d "${S}" ]; then
  for fig in shallue_fig1 shallue_fig8 shallue_fig11 playbook_isolation playbook_axis; do
    q python -m paper_figures.${fig} --results_dir="${S}/batch_scaling" --out="${OUT}/${fig}.png"
  done
  for fig in choi_fig3 choi_fig4 best_of_k; do
    q python -m paper_figures.${fig} --results_dir="${S}/optimizer_ranking" --out="${OUT}/${fig}.png"
  done
  for exp in batch_scaling optimizer_ranking variance; do
    q python -m analysis.report --results_dir="${S}/${exp}" --out="${OUT}/report_${exp}" --nohtml
  done
fi
S=${STORES}/cpu_optimizer_comparison
if [ -d "${S}" ]; then
  for w in mnist1d_mlp stdlib_lm; do
    q python -m paper_figures.choi_fig3 --results_dir="${S}/${w}" --out="${OUT}/${w}_ranking.png"
    q python -m paper_figures.ranking_vs_budget --results_dir="${S}/${w}" --out="${OUT}/${w}_ranking_vs_budget.png"
    q python -m paper_figures.steps_vs_clock --results_dir="${S}/${w}" --out="${OUT}/${w}_steps_vs_clock.png"
    q python -m analysis.report --results_dir="${S}/${w}" --out="${OUT}/report_${w}" --nohtml
  done
fi
CSV=${SHARED}/reference/deepobs_baselines_runs.csv.gz
if [ -f "${CSV}" ]; then
  q python -m paper_figures.deepobs_table --csv="${CSV}" --out="${OUT}/deepobs_table.md"
  q python -m paper_figures.ranking_vs_budget --deepobs_csv="${CSV}" --out="${OUT}/deepobs_ranking_vs_budget.png"
fi
TMP=$(mktemp -d)
trap 'rm -rf "${TMP}"' EXIT
for v in 05_dev 06; do
  tarball=${SHARED}/reference/algoperf_v${v}/logs.tar.xz
  [ -f "${tarball}" ] || continue
  mkdir -p "${TMP}/${v}" && tar xJf "${tarball}" -C "${TMP}/${v}"
  logs=${TMP}/${v}; [ -d "${logs}/logs" ] && logs=${logs}/logs
  version=0.${v:1:1}
  q python -m analysis.algoperf --logs="${logs}" --version="${version}" --ruleset=external_tuning --out="${OUT}/algoperf_v${v}"
  python -m analysis.algoperf --logs="${logs}" --version="${version}" --ruleset=external_tuning > "${OUT}/algoperf_v${v}.txt" 2>&1 || true
  sed -i "s#${TMP}#TMP#g" "${OUT}/algoperf_v${v}.txt"
  q python -m paper_figures.ranking_vs_budget --algoperf_logs="${logs}/external_tuning" --out="${OUT}/algoperf_v${v}_ranking_vs_budget.png"
  q python -m paper_figures.steps_vs_clock --algoperf_logs="${logs}/external_tuning" --out="${OUT}/algoperf_v${v}_steps_vs_clock.png"
done
(cd "${OUT}" && find . -type f \( -name '*.md' -o -name '*.png' -o -name '*.csv' -o -name '*.txt' \) \
  | sort | xargs sha256sum)
