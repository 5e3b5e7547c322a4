#!/usr/bin/env bash
# Checks the built executable: its --self-test (with no display: the model, one training
# epoch in a training process started the way the app starts one, the embedded database,
# Qt), then, when Xvfb is there, that it opens its window on a real X server; prints the
# time to window and keeps a screenshot in artifacts/package_window.png.
set -euo pipefail
cd "$(dirname "$0")/.."
EXE=dist/mnist-classifier/mnist-classifier
[ -x "$EXE" ] || { echo "no $EXE: run 'make package' first" >&2; exit 1; }
echo "package size: $(du -sh dist/mnist-classifier | cut -f1)"
tmp=$(mktemp -d /tmp/mnist-package-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# As on a server with no screen: no display and no Qt platform chosen (it picks offscreen).
env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM MNIST_DATA_HOME="$tmp/home" "$EXE" --self-test | tee "$tmp/selftest.log"
grep -q "training: .* in a training process" "$tmp/selftest.log" \
  || { echo "the self-test did not train in a training process" >&2; exit 1; }
if ! command -v xvfb-run >/dev/null || ! command -v xdotool >/dev/null; then
  echo "xvfb-run or xdotool missing: window check skipped"
  exit 0
fi
mkdir -p artifacts
cat > "$tmp/window.sh" <<'INNER'
set -u
exe=$1; home=$2
start=$(date +%s%N)
MNIST_DATA_HOME="$home" "$exe" >"$home.log" 2>&1 &
pid=$!
wid=""
for _ in $(seq 1 400); do
  wid=$(xdotool search --onlyvisible --name "MNIST Digit Classifier" 2>/dev/null | head -1 || true)
  [ -n "$wid" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.025
done
end=$(date +%s%N)
if [ -z "$wid" ]; then echo "the window did not appear"; cat "$home.log"; kill $pid 2>/dev/null; exit 1; fi
echo "window shown after $(( (end - start) / 1000000 )) ms"
sleep 4
import -window root artifacts/package_window.png 2>/dev/null || true
kill -TERM $pid
for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then echo "the app did not quit on SIGTERM"; kill -9 $pid; exit 1; fi
wait $pid; rc=$?
echo "quit on SIGTERM (exit $rc)"
INNER
xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" bash "$tmp/window.sh" "$EXE" "$tmp/home"
echo "package test ok"
