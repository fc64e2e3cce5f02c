#!/usr/bin/env bash
# One pass on one accelerator, inside about 9 minutes: a short real training
# run (the GPU-sized CR-32 codec, then the crop augmenter on it and its SSIM
# report) and the benchmarks at paper size.
#
#   bash benchmarks/gpu_suite.sh OUT_DIR [RUN_DIR]
#
# OUT_DIR receives few files (suite.log, the tables, one grid PNG), so that a
# machine which hands back only a handful of files returns all of them.
# Each stage runs under its own time limit (seconds; override through the
# environment: CODEC_LIMIT, AUG_LIMIT, AUG_EVAL_LIMIT, BENCH_LIMIT,
# INPUT_LIMIT) and is
# skipped when what is left of the pass's budget (SUITE_BUDGET) would not
# cover it. `timeout` sends SIGTERM first: the trainer then saves a
# checkpoint and returns, so a codec cut short still leaves one for the
# augmenter (its cosine schedule unfinished: the log says at which step).
# Step counts: CODEC_STEPS, AUG_STEPS.
# Set SUITE_SMOKE=1 for a CPU check of the script itself (tiny sizes).
set -u
out=${1:?usage: gpu_suite.sh OUT_DIR [RUN_DIR]}
runs=${2:-/tmp/cvision_gpu_suite}
mkdir -p "$out" "$runs"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
budget=${SUITE_BUDGET:-540}
log="$out/suite.log"

if [[ ${SUITE_SMOKE:-0} == 1 ]]; then
  dataset=tiny codec_preset=tiny,gpu30 aug_preset=tiny,crop
  codec_steps=${CODEC_STEPS:-4} aug_steps=${AUG_STEPS:-2}
  codec_batch=4 aug_batch=4 sizes=cpu s3d_size=cpu
  codec_presets=tiny input_size=cpu
  quick="--rounds=1" input_args="--clips=8 --seconds=0.5 --rounds=1"
  prefetch_args="--frames=32 --rounds=1"
else
  dataset=small codec_preset=gpu30 aug_preset=crop
  codec_steps=${CODEC_STEPS:-4000} aug_steps=${AUG_STEPS:-3000}
  codec_batch=16 aug_batch=32 sizes=cpu,paper s3d_size=paper
  codec_presets=cpu,cr256 input_size=paper
  quick="" input_args="--seconds=5 --rounds=3" prefetch_args="--frames=1024"
fi

# stage NAME LIMIT CMD...: runs CMD under LIMIT seconds, its output appended
# to suite.log, unless fewer than LIMIT seconds of the budget are left.
stage() {
  local name=$1 limit=$2 left=$((budget - SECONDS))
  shift 2
  if ((left < limit)); then
    echo "== $name: skipped (${left}s of the budget left, needs ${limit}s)" \
        | tee -a "$log"
    return 0
  fi
  echo "== $name (limit ${limit}s): $*" | tee -a "$log"
  local start=$SECONDS
  timeout -k 30 "$limit" "$@" >>"$log" 2>&1
  echo "== $name: exit $? after $((SECONDS - start))s" | tee -a "$log"
}

main=experiments/main.py
codec_dir=$runs/codec
aug_dir=$runs/aug_crop
data="--config.data.data_dir=$runs/datasets --config.data.num_threads=8
      --config.data.builder_kwargs.config=$dataset"

stage environment 60 "$python" -c '
import jax, flax, optax, orbax.checkpoint, tensorflow_datasets, grain, dm_pix
print("jax", jax.__version__, "flax", flax.__version__, "tfds",
      tensorflow_datasets.__version__, "devices", jax.devices())'
stage dataset 90 "$python" -m data_pipelines.build_cli \
    --dataset=moving_digits --config=$dataset --data_dir="$runs/datasets"
stage codec_train ${CODEC_LIMIT:-240} "$python" $main \
    --config=experiments/configs/codec.py:$codec_preset --workdir="$codec_dir" \
    $data --config.train.steps=$codec_steps \
    --config.data.batch_size=$codec_batch --config.train.checkpoint_every=500
stage aug_train ${AUG_LIMIT:-120} "$python" $main \
    --config=experiments/configs/augmenter.py:$aug_preset --workdir="$aug_dir" \
    --config.codec.workdir="$codec_dir" $data \
    --config.train.steps=$aug_steps --config.data.batch_size=$aug_batch \
    --config.train.checkpoint_every=500
stage aug_eval ${AUG_EVAL_LIMIT:-90} "$python" $main \
    --config=experiments/configs/augmenter.py:$aug_preset --workdir="$aug_dir" \
    --config.codec.workdir="$codec_dir" $data --mode=eval
bench_limit=${BENCH_LIMIT:-60}
stage codec_throughput $bench_limit "$python" benchmarks/codec_throughput.py \
    --sizes=$sizes
stage augmenter_cost $bench_limit "$python" benchmarks/augmenter_cost.py \
    --sizes=$sizes $quick
stage s3d_speed $bench_limit "$python" benchmarks/s3d_speed.py \
    --size=$s3d_size $quick
stage codec_training $bench_limit "$python" benchmarks/codec_training.py \
    --presets=$codec_presets $quick
stage encode_prefetch $bench_limit "$python" benchmarks/encode_prefetch.py \
    $prefetch_args
stage input_throughput ${INPUT_LIMIT:-150} "$python" \
    benchmarks/input_throughput.py --size=$input_size $input_args \
    --workdir="$runs/input"

# The few files worth bringing back.
cp "$codec_dir/metrics.jsonl" "$out/codec_metrics.jsonl" 2>/dev/null
cp "$aug_dir/metrics.jsonl" "$out/aug_metrics.jsonl" 2>/dev/null
cp "$aug_dir"/eval/augmenter_test.md "$aug_dir"/eval/crop_grid.png "$out/" \
    2>/dev/null
echo "== suite done after ${SECONDS}s; files in $out:" | tee -a "$log"
ls "$out" | tee -a "$log"
