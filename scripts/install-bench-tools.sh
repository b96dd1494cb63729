#!/usr/bin/env bash
# The load generator the benchmarks drive servers with (benchmarks/_common.py: run_wrk).
set -euo pipefail
if ! command -v wrk >/dev/null; then
  echo "installing wrk"
  apt-get update -qq
  apt-get install -y -qq wrk
fi
