#!/usr/bin/env bash
# The GPU check (benchmarks/gpu/check.py): bf16 training and loader throughput, CUDA latency and NVML energy,
# and two minutes of a shrunk `--preset full` search, written to $OUT/gpu_check.json in under 8 minutes.
#
#   benchmarks/gpu/check.sh              # on the GPU machine (its own PyTorch; nascomp from this checkout)
#   benchmarks/gpu/check.sh --dry-run    # every step at toy sizes on the CPU (also: NASCOMP_GPU_CHECK_DRY=1)
#
# nascomp needs timm (with torchvision), safetensors, pyyaml, rich, matplotlib and nvidia-ml-py beside torch.
# On a machine without PyPI, set NASCOMP_WHEELS to a folder of wheels built elsewhere for that Python, e.g.
#   pip download -d wheels --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       timm==1.0.31 safetensors pyyaml rich matplotlib nvidia-ml-py huggingface_hub
# and they are installed from it, offline, before the check runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OUT="${OUT:-$PWD/runs/gpu-check}"

missing=$("$PYTHON" - <<'PY'
import importlib.util
mods = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "safetensors": "safetensors", "yaml": "pyyaml",
        "rich": "rich", "matplotlib": "matplotlib", "pynvml": "nvidia-ml-py", "numpy": "numpy", "PIL": "pillow"}
print(" ".join(pkg for mod, pkg in mods.items() if importlib.util.find_spec(mod) is None))
PY
)
if [ -n "$missing" ]; then
  if [ -n "${NASCOMP_WHEELS:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --find-links "$NASCOMP_WHEELS" $missing
  else
    echo "error: missing Python packages: $missing; install them (pip install $missing) or set NASCOMP_WHEELS to a wheel folder" >&2
    exit 2
  fi
fi
exec "$PYTHON" benchmarks/gpu/check.py "$@"
