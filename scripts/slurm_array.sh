#!/usr/bin/env bash
# One experiment as a Slurm job array: task i of n runs `bench.run --shard=i/n`,
# all tasks writing to one results directory on a shared filesystem.
#
#   sbatch --array=0-15 scripts/slurm_array.sh CONFIG OUTPUT_DIR [bench.run flags...]
#   e.g. sbatch --array=0-15 scripts/slurm_array.sh \
#          protocols/experiments/batch_scaling.py:mnist_cnn,paper /shared/runs/bs \
#          --config.settings.data_dir=/shared/data
#
# Requeued or preempted tasks (--requeue) rerun the same command: finished trials
# are skipped, the interrupted one resumes from its checkpoint. A trial is never
# run twice at once (per-trial locks), so resubmitting the whole array is safe.
# Watch progress with: python -m bench.status --output_dir=OUTPUT_DIR
#SBATCH --job-name=optbench
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=optbench-%A_%a.log
set -euo pipefail
CONFIG=${1:?usage: sbatch --array=0-(n-1) $0 CONFIG OUTPUT_DIR [bench.run flags]}
OUTPUT_DIR=${2:?usage: sbatch --array=0-(n-1) $0 CONFIG OUTPUT_DIR [bench.run flags]}
N=${SLURM_ARRAY_TASK_COUNT:?not a Slurm array task: submit with sbatch --array=0-(n-1)}
I=$(( SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0} ))
exec python -m bench.run --config="${CONFIG}" --output_dir="${OUTPUT_DIR}" \
  --shard="${I}/${N}" "${@:3}"
