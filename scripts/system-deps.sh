#!/usr/bin/env bash
# Installs the Debian packages the tests and the GUI need, when they are missing.
# xvfb/xdotool/imagemagick: the end-to-end test on a real X server; libxcb-*: Qt's xcb plugin;
# postgresql: a second, "external" server for the database tests.
set -euo pipefail
need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v xdotool >/dev/null || need+=(xdotool)
command -v import >/dev/null && import -version >/dev/null 2>&1 || need+=(imagemagick)
[ -d /usr/lib/postgresql ] || need+=(postgresql)
for lib in libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
