#!/usr/bin/env bash
# `make test` the way a newcomer runs it, on this machine: a fresh clone of the committed
# code in a folder with no ../shared, MNIST_DIR unset, an empty data folder
# (MNIST_DATA_HOME), and the four MNIST files served by a local HTTP server given as
# MNIST_MIRROR. The clone builds its own virtualenv. Then, with no network at all (a network
# namespace of its own, when `unshare -n` works) and no copy, `make test` must stop with a
# clear message.
#
#   scripts/fresh-clone-test.sh [FOLDER_WITH_THE_FOUR_FILES]   (default: ../shared/data/mnist)
#   KEEP=1 scripts/fresh-clone-test.sh    keeps the clone and its virtualenv afterwards
#
# Run it niced on a shared machine: it builds a ~1 GB virtualenv and runs every test.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
mnist_src=$(cd "${1:-$src/../shared/data/mnist}" && pwd)
root=$(mktemp -d /tmp/fresh-XXXXXX)
http_pid=""
cleanup() {
  [ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $root"; else rm -rf "$root"; fi
}
trap cleanup EXIT

git clone -q "$src" "$root/repo"
echo "clone of $(git -C "$root/repo" rev-parse --short HEAD) in $root/repo; ../shared there: $([ -e "$root/shared" ] && echo yes || echo no)"
mkdir "$root/mirror" "$root/home" "$root/home-offline"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  cp "$mnist_src/$f" "$root/mirror/$f"
done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$root/mirror" >"$root/http.log" 2>&1 &
http_pid=$!
for _ in $(seq 1 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
  sleep 0.1
done
mirror="http://127.0.0.1:$port/"

# pytest keeps only the three newest of its temp folders per user, so on a machine where
# others run pytest as the same user at the same time, a later run deletes this one's (and
# the test database server in it): give this run a temp folder of its own.
# (Run as root, the tests' second PostgreSQL server runs as user postgres in a folder under
# TMPDIR, so the folders above it must be open to others, as /tmp is.)
mkdir "$root/tmp"
chmod 755 "$root" "$root/tmp"
export TMPDIR="$root/tmp"

# 1. With the mirror: everything is set up and every test passes.
cd "$root/repo"
start=$SECONDS
env -u MNIST_DIR MNIST_DATA_HOME="$root/home" MNIST_MIRROR="$mirror" nice -n 10 make test
echo "fresh clone, make test: passed in $((SECONDS - start)) s"
echo "files fetched from the mirror: $(grep -c 'GET /[a-z0-9-]*-ubyte.gz' "$root/http.log")"
ls "$root/home/mnist"

# 2. The test fixture on its own (pytest without make) fetches into an empty data folder too.
env -u MNIST_DIR MNIST_DATA_HOME="$root/home-pytest" MNIST_MIRROR="$mirror" QT_QPA_PLATFORM=offscreen \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/ml/test_data.py::test_reads_the_real_files
ls "$root/home-pytest/mnist"

# 3. Offline, no copy, the mirror unreachable: make test stops with what to do.
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); else echo "(unshare -n unavailable: the public mirrors may be reachable)"; fi
set +e
env -u MNIST_DIR MNIST_DATA_HOME="$root/home-offline" MNIST_MIRROR="http://127.0.0.1:9/" \
  "${offline[@]}" make test >"$root/offline.log" 2>&1
rc=$?
set -e
cat "$root/offline.log"
[ "$rc" -ne 0 ] || { echo "FAIL: make test passed offline without the files"; exit 1; }
for want in "Could not download" "$root/home-offline/mnist" MNIST_DIR MNIST_MIRROR "copy the four MNIST files" \
            train-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  grep -qF -- "$want" "$root/offline.log" || { echo "FAIL: the offline message lacks '$want'"; exit 1; }
done
if grep -q Traceback "$root/offline.log"; then echo "FAIL: a traceback offline"; exit 1; fi
[ -z "$(ls -A "$root/home-offline/mnist")" ] || { echo "FAIL: files left behind offline"; exit 1; }
echo "offline: make test stopped (exit $rc) with a clear message, no partial files"
echo "fresh-clone test ok"
