#!/usr/bin/env bash
# Run the experiment drivers on bad and good input and print, per case, the exit code and
# what they wrote (temporary paths replaced by TMP), so that a refactor can show every
# one-line error, exit code and dry-run listing unchanged: run it at the old commit and the
# new one and diff the outputs.
#
#   scripts/cli_transcript.sh > transcript.txt
set -uo pipefail
TMP=$(mktemp -d)
trap 'rm -rf "${TMP}"' EXIT
R=protocols/experiments/batch_scaling.py:mnist1d_mlp,smoke
printf 'raise ValueError("boom")\n' > "${TMP}/raises.py"
printf 'def get_config(arg=None):\n  raise KeyError(arg)\ndef studies(c):\n  return []\n' > "${TMP}/bad_arg.py"
printf 'def get_config():\n  return {}\n' > "${TMP}/no_studies.py"
mkdir -p "${TMP}/other" && printf '{"experiment": "other"}\n' > "${TMP}/other/experiment.json"
case_() {
  local name=$1; shift
  echo "== ${name}: $*" | sed "s#${TMP}#TMP#g"
  timeout 300 "$@" > "${TMP}/out" 2> "${TMP}/err"
  echo "exit $?"
  sed "s#${TMP}#TMP#g; s#[0-9.]*s: results#Ns: results#; s#done in [0-9]*s#done in Ns#" "${TMP}/out" "${TMP}/err" \
    | grep -v "^\s*$" | grep -v "ETA\|trial [0-9]*/[0-9]* \|WARNING\|^I[0-9]\|^W[0-9]"
}
case_ no_flags python -m bench.run
case_ no_output python -m bench.run --config=${R}
case_ missing_recipe python -m bench.run --config=nope.py --output_dir="${TMP}/o"
case_ raising_recipe python -m bench.run --config="${TMP}/raises.py" --output_dir="${TMP}/o"
case_ bad_arg python -m bench.run --config="${TMP}/bad_arg.py:x" --output_dir="${TMP}/o"
case_ no_studies python -m bench.run --config="${TMP}/no_studies.py" --output_dir="${TMP}/o"
case_ typo_field python -m bench.run --config=${R} --config.num_trails=3 --output_dir="${TMP}/o"
case_ typo_setting python -m bench.run --config=${R} --config.settings.dtyp=float32 --output_dir="${TMP}/o"
case_ unknown_flag python -m bench.run --config=${R} --output_dri="${TMP}/o"
case_ bad_shard python -m bench.run --config=${R} --shard=3/2 --output_dir="${TMP}/o"
case_ bad_pack python -m bench.run --config=${R} --pack=bogus --output_dir="${TMP}/o"
case_ bad_workload python -m bench.run --config=${R} --config.workload=nope --output_dir="${TMP}/o"
case_ unwritable python -m bench.run --config=${R} --output_dir=/proc/optbench
case_ other_experiment python -m bench.run --config=${R} --output_dir="${TMP}/other"
case_ dry_run python -m bench.run --config=${R} --dry_run --output_dir="${TMP}/o"
case_ run python -m bench.run --config=${R} --output_dir="${TMP}/o"
case_ resume python -m bench.run --config=${R} --output_dir="${TMP}/o"
echo "== stored: $(cd "${TMP}/o" && find . -name record.json | sort | tr '\n' ' ')"
case_ demo_bad python -m scripts.demo --batch_sizes=0 --output_dir="${TMP}/d"
case_ demo_unwritable python -m scripts.demo --num_trials=1 --output_dir=/proc/optbench
case_ demo_unknown_flag python -m scripts.demo --num_trial=1 --output_dir="${TMP}/d"
ls "${TMP}/o" "${TMP}/d" 2>&1 | sed "s#${TMP}#TMP#g"
