#!/usr/bin/env bash
# Make Fashion-MNIST available offline: Debian's dataset-fashion-mnist package, or a folder named by NASCOMP_DATA.
set -euo pipefail
debian=/usr/share/datasets/fashion-mnist
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

have_all() { for f in $files; do [ -f "$1/$f" ] || return 1; done; }

if [ -n "${NASCOMP_DATA:-}" ]; then
  have_all "$NASCOMP_DATA" && exit 0
  echo "error: NASCOMP_DATA=$NASCOMP_DATA lacks some of: $files" >&2
  exit 2
fi
have_all "$debian" && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian package dataset-fashion-mnist ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  have_all "$debian" && exit 0
fi
cat >&2 <<MSG
error: Fashion-MNIST is not installed.
  As root on Debian/Ubuntu:  apt-get update && apt-get install -y dataset-fashion-mnist
  Without root: download the four files ($files)
  from https://github.com/zalandoresearch/fashion-mnist into a folder, then: export NASCOMP_DATA=/that/folder
MSG
exit 2
