#!/usr/bin/env bash
# Fail early, with the fix, when the interpreter is too old or cannot make virtual environments.
set -euo pipefail
py="${1:-python3}"
if ! command -v "$py" >/dev/null; then
  echo "error: $py not found. Install Python 3.10+ (Debian: apt-get install -y python3 python3-venv) or run make PYTHON=/path/to/python3" >&2
  exit 2
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "error: nascomp needs Python 3.10 or newer; $py is $("$py" --version 2>&1). Run make PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "error: $py cannot create virtual environments. Debian: apt-get install -y python3-venv" >&2
  exit 2
fi
