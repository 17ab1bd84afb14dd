#!/usr/bin/env bash
# Start the Dagster UI (and the daemon that runs the inbox sensor and the nightly schedule) on 127.0.0.1,
# port UI_PORT (default 3000). DAGSTER_HOME gets a copy of the project's dagster.yaml.
set -euo pipefail
# What the daemon and its runs make (the database, reports, archive) holds patient data: owner-only.
umask 077
cd "$(dirname "$0")/.."
home="$(realpath -m "${CLAIMSCRUB_HOME:-.claimscrub}")"
export DAGSTER_HOME="${DAGSTER_HOME:-$home/dagster}"
mkdir -p "$DAGSTER_HOME"
cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
exec .venv/bin/dagster dev -h 127.0.0.1 -p "${UI_PORT:-3000}"
