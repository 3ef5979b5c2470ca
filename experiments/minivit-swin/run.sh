#!/usr/bin/env bash
# Reproduces experiments/minivit-swin/README.md. Run from the repository root with the venv's nascomp on PATH
# (e.g. `PATH=$PWD/.venv/bin:$PATH experiments/minivit-swin/run.sh`). CPU only; one thread per job, niced.
set -euo pipefail
cd "$(dirname "$0")"
R=runs
mkdir -p $R
run() { nice -n 10 env OMP_NUM_THREADS=1 "$@"; }

# 1. Teacher: timm's SwinTransformer (Swin-T layout 2-2-6-2) sized for 32 px Fashion-MNIST.
SWIN=(swin_tiny_patch4_window7_224 --img-size 32 --patch-size 4 --window-size 4 --embed-dim 32 --num-heads 1,2,4,8 --in-chans 1)
run nascomp train "${SWIN[@]}" --data fashion-mnist --epochs 8 --out $R/teacher

# 2. Students: the same recipe for all (AdamW, 4 epochs, peak LR 5e-4, half an epoch of warm-up).
STUDENT=(--data fashion-mnist --epochs 4 --lr 5e-4 --warmup-epochs 0.5)
run nascomp compress $R/teacher --method minivit "${STUDENT[@]}" --out $R/minivit                      # weight distillation (default)
run nascomp compress $R/teacher --method minivit --distill none "${STUDENT[@]}" --out $R/minivit-nodistill
run nascomp compress $R/teacher --method minivit --init random "${STUDENT[@]}" --out $R/minivit-random-init
run nascomp compress $R/teacher --method drop-blocks --keep 2,2,1,1 "${STUDENT[@]}" --out $R/dropblocks
run nascomp compress $R/teacher --method drop-blocks --keep 2,2,1,1 --distill none "${STUDENT[@]}" --out $R/dropblocks-nodistill
# Control: the uncompressed teacher trained 4 more epochs with the student recipe (no sharing, no transforms, labels only).
run nascomp compress $R/teacher --method minivit --share 1 --no-head-transform --no-mlp-transform --distill none "${STUDENT[@]}" --out $R/teacher-plus4
# (dropblocks and minivit-random-init were stopped part-way and continued by re-running their line with --resume
# added; resume is bit-identical on CPU, see DEVELOPING.md.)

# 3. Step-0 accuracy of each initialisation.
run python init_check.py $R/teacher --out $R/init.json

# 4. Deployables and latency (ONNX Runtime fp32, batch 1, one thread), all models measured back to back. The
# machine is shared, so both targets time the thread's CPU time (--timer thread-cpu, which needs --threads 1);
# `cpu` is unpinned, `mobile-cpu` pins core 1.
NAMES=(teacher minivit minivit-nodistill minivit-random-init dropblocks dropblocks-nodistill teacher-plus4)
for n in "${NAMES[@]}"; do run nascomp export $R/$n --format onnx --json > $R/$n/export.json; done
uptime > $R/load.txt
for target in cpu mobile-cpu; do
  for n in "${NAMES[@]}"; do
    run nascomp profile $R/$n --target $target --runtime onnxruntime --precision fp32 --threads 1 --timer thread-cpu \
      --warmup 50 --repeat 500 --quiet --json --out $R/$n/profile-$target.json > /dev/null
  done
done
uptime >> $R/load.txt

# 5. The table.
python table.py $R --json results.json
# Small per-run records kept in git (runs/ is ignored): metrics, export check, latency reports, step-0 check, load.
for n in "${NAMES[@]}"; do
  mkdir -p results/$n && cp $R/$n/metrics.json $R/$n/export.json $R/$n/profile-*.json results/$n/
done
cp $R/init.json $R/load.txt results/
