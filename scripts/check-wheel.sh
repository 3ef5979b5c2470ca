#!/usr/bin/env bash
# The wheel works on its own: build it, install it (not editable) into a fresh virtual environment, and run the
# main job's smoke preset and a cost count from a folder outside the source tree. Used by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel -q --no-deps -w "$work/dist" . 2>&1 | grep -v "WARNING: Location" || true
wheel=$(ls "$work"/dist/nascomp-*.whl)
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel" 2>&1 | grep -v "WARNING: Location" || true
mkdir "$work/elsewhere" && cd "$work/elsewhere"
"$work/venv/bin/nascomp" search --space s3-vit --budget 4gflops --preset smoke --out R --quiet > search.txt
test -s R/best_arch.json
"$work/venv/bin/nascomp" flops swin_s3_tiny_224 --json > flops.json
"$work/venv/bin/python" - <<'PY'
import json
from pathlib import Path

import nascomp

assert "site-packages" in nascomp.__file__, nascomp.__file__  # the installed wheel, not the source tree
flops = json.loads(Path("flops.json").read_text())
assert flops["params"] == 28_328_674 and flops["macs"] == 4_623_332_352, flops
best = json.loads(Path("R/best_arch.json").read_text())
assert best["budget"]["within"], best["budget"]
print(f"wheel OK: {Path(nascomp.__file__).parent}; smoke search best {best['gmacs']:.3f} G MACs within {best['budget']['text']}")
PY
