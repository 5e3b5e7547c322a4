#!/usr/bin/env bash
# Installs the Debian packages the GUI (and, with "test", the tests) need, when missing.
#   libxcb-* etc.: Qt's xcb plugin.                       (run and test)
#   xvfb/xdotool/imagemagick: the test on a real X server; postgresql: a second,
#   "external" server for the database tests.            (test only)
# Without root it only says what to install; for "run" that is a warning, not an error.
set -euo pipefail
mode=${1:-test}
need=()
if [ "$mode" = test ]; then
  command -v Xvfb >/dev/null || need+=(xvfb)
  command -v xdotool >/dev/null || need+=(xdotool)
  command -v import >/dev/null && import -version >/dev/null 2>&1 || need+=(imagemagick)
  [ -d /usr/lib/postgresql ] || need+=(postgresql)
fi
command -v dpkg >/dev/null || exit 0  # not Debian/Ubuntu: nothing to check here
for lib in libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]}" >&2
  [ "$mode" = run ] && exit 0
  exit 1
fi
echo "Installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
