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
if [ "${WHEEL_CHECK_DEPS:-shared}" = install ]; then
  "$work/venv/bin/pip" install -q "$wheel" 2>&1 | grep -v "WARNING: Location" || true
else
  # A second copy of torch and its CUDA libraries is ~5.5 GB, more than CI's disk can spare beside .venv: the fresh venv
  # sees .venv's packages through a .pth (after its own site-packages, and without running .venv's own .pth files, so the
  # editable nascomp stays invisible), installs only the wheel, and `pip check` proves every requirement it declares is met.
  # WHEEL_CHECK_DEPS=install installs the dependencies from the registry instead.
  purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
  purelib .venv/bin/python > "$(purelib "$work/venv/bin/python")/zz-nascomp-deps.pth"
  "$work/venv/bin/pip" uninstall -q -y setuptools 2>/dev/null || true  # the venv's bundled one would shadow the one torch needs
  "$work/venv/bin/pip" install -q --no-deps "$wheel" 2>&1 | grep -v "WARNING: Location" || true
  "$work/venv/bin/pip" check
fi
mkdir "$work/elsewhere" && cd "$work/elsewhere"
"$work/venv/bin/nascomp" search --space s3-vit --budget 4gflops --preset smoke --out R --quiet > search.txt
test -s R/best_arch.json
"$work/venv/bin/nascomp" flops swin_s3_tiny_224 --json > flops.json
"$work/venv/bin/python" - <<'PY'
import json
import sys
from pathlib import Path

import nascomp

assert nascomp.__file__.startswith(sys.prefix) and "site-packages" in nascomp.__file__, nascomp.__file__  # the wheel, not the tree
flops = json.loads(Path("flops.json").read_text())
assert flops["params"] == 28_328_674 and flops["macs"] == 4_623_332_352, flops
best = json.loads(Path("R/best_arch.json").read_text())
assert best["budget"]["within"], best["budget"]
print(f"wheel OK: {Path(nascomp.__file__).parent}; smoke search best {best['gmacs']:.3f} G MACs within {best['budget']['text']}")
PY
