#!/usr/bin/env bash
# Every GPU measurement of issue 11 in one command (< 8 minutes on one H200):
#   here:  scripts/gpu_prepare.sh
#   there: device run, command "bash scripts/gpu_bench.sh", carry [".whl", ".gpu_data"]
# then, here: python -m bench.perf --merge=<files_at>/perf_gpu.json (into benchmarks/, BENCHMARKS.md)
# Rows go to $OUT/perf_gpu.json (bench.perf's format); logs to $OUT/gpu_bench.log.
#   1. simple CNN, real MNIST, batch 8 and 32: whole studies (128 / 64 trials, 600 steps)
#      against the naive loop and the bare fused loop, --pack=off and --pack=auto
#   2. simple CNN at batch 128, 1024, 8192: examples/s of a trial and a study vs naive
#   3. ResNet-8 (random CIFAR-shaped data) at batch 128 and 8192, bf16
#   4. the Transformer LM in bf16: MFU of a harness trial
#   5. bf16 vs fp32 accuracy of a short simple-CNN trial (the default-dtype question)
# SMOKE=1 shrinks everything to seconds (to check the script on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_bench_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export OPTBENCH_PACKING_CACHE=/tmp/packing OPTBENCH_COMPILATION_CACHE=/tmp/xla_cache
DATA=.gpu_data
S=600; F=3000; N8=128; N32=64; NB=16; R=200; L=100; BIG=128,1024,8192; RB=128,8192
LM="seq_len=512,num_layers=8,model_dim=1024,num_heads=8,mlp_dim=4096"; LB=64
if [ "${SMOKE:-0}" = 1 ]; then
  S=20; F=20; N8=2; N32=2; NB=2; R=4; L=4; BIG=64; RB=32
  LM="seq_len=64,num_layers=1,model_dim=64,num_heads=2,mlp_dim=128"; LB=8
fi
PERF=(python3 -m bench.perf "--out=$OUT/perf_gpu.json" --markdown= --repeats=3)
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
  "${PERF[@]}" --workload=mnist_cnn --data_dir=$DATA --batch_sizes=8,32 \
    --num_trials=$N8,$N32 --train_steps=$S --eval_every=100 --note="gpu_bench 1"
  "${PERF[@]}" --workload=mnist_cnn --data_dir=$DATA --batch_sizes=$BIG \
    --num_trials=$NB --train_steps=$S --eval_every=$S --note="gpu_bench 2"
  "${PERF[@]}" --workload=workloads.synthetic:Cifar10ResNet8 --batch_sizes=$RB \
    --num_trials=4 --modes=bare,naive,trial --train_steps=$R --eval_every=$R --dtype=bfloat16 \
    --note="gpu_bench 3"
  "${PERF[@]}" --workload=shakespeare_lm --data_dir=$DATA --dtype=bfloat16 --mfu \
    --workload_args="$LM" --batch_sizes=$LB --num_trials=1 --modes=trial \
    --train_steps=$L --eval_every=$L \
    --note="gpu_bench 4"
  for dt in float32 bfloat16; do
    python3 -m bench.train --workload=mnist_cnn --data_dir=$DATA --optimizer=nesterov \
      --config.hparams.learning_rate=0.05 --config.hparams.momentum=0.9 \
      --config.batch_size=128 --config.train_steps=$F --config.eval_every=$F \
      --config.dtype=$dt --output_dir="/tmp/dtype_$dt" | tail -2
    cp "/tmp/dtype_$dt/record.json" "$OUT/dtype_$dt.json"
  done
} 2>&1 | tee "$OUT/gpu_bench.log"
