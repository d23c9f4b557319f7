#!/usr/bin/env bash
# System libraries Qt needs: offscreen (libEGL, libGL, fontconfig, xkbcommon, dbus) and on a real X11 display (xcb).
# Installs them with apt when they are missing and we are root; otherwise says what to install.
set -u
need=()
for lib in libEGL.so.1 libGL.so.1 libfontconfig.so.1 libxkbcommon.so.0 libdbus-1.so.3 libglib-2.0.so.0 libxcb-cursor.so.0 libxcb-icccm.so.4; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || need+=("$lib")
done
[ ${#need[@]} -eq 0 ] && exit 0
pkgs="libegl1 libgl1 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3 libglib2.0-0 fonts-dejavu-core \
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing system libraries for Qt: $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
else
  echo "Qt needs these system libraries (missing: ${need[*]}); install: $pkgs" >&2
fi
exit 0
