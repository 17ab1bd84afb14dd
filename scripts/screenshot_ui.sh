#!/usr/bin/env bash
# A check a person would do: start `make ui`, open the asset graph in headless Chromium and save a
# screenshot to docs/ui-asset-graph.png. Needs Debian's chromium package. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${UI_PORT:-3000}"
url="http://127.0.0.1:$port"
work="$(mktemp -d)"
# A throwaway working folder: the screenshot shows the definitions, not this machine's runs.
export CLAIMSCRUB_HOME="$work/home" UI_PORT="$port"
unset DAGSTER_HOME

# `dagster dev` in the background of a non-interactive shell ignores SIGINT and SIGTERM unless job
# control puts it in its own process group, which is then stopped with SIGINT.
set -m
make ui >"$work/ui.log" 2>&1 &
ui_pid=$!
stop_ui() { kill -INT -- "-$ui_pid" 2>/dev/null || true; wait "$ui_pid" 2>/dev/null || true; rm -rf "$work"; }
trap stop_ui EXIT

for _ in $(seq 1 120); do
  curl -sf "$url/server_info" >/dev/null && break
  sleep 1
done
curl -sf "$url/server_info" >/dev/null || { echo "the UI did not start; log:"; cat "$work/ui.log"; exit 1; }

shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$work/chromium" --hide-scrollbars \
    --window-size=1800,1400 --virtual-time-budget=20000 --screenshot="$PWD/docs/$1" "$url/$2" 2>>"$work/chromium.log"
}
# The lineage view with every stage's group opened (the UI's own `expanded` parameter).
groups="global@global:ingest,global@global:reference,global@global:validate,global@global:scrub,global@global:report,global@global:feedback"
shot ui-asset-graph.png "asset-groups?expanded=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$groups")"
shot ui-automation.png automation
echo "saved docs/ui-asset-graph.png and docs/ui-automation.png"
