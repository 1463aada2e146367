#!/usr/bin/env bash
# The README's test command: install what the suite needs, then run all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages used by the suite: headless Chromium (report rendering), OpenSCAD (enclosure),
# dbus-daemon (bleak end-to-end against a fake BlueZ).
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v openscad >/dev/null || need+=(openscad)
command -v dbus-daemon >/dev/null || need+=(dbus)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "tests/run.sh: please install: ${need[*]}" >&2
        exit 2
    fi
fi

python3 -m pip install -q -e '.[test]'
exec python3 -m pytest "$@"
