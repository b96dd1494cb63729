#!/usr/bin/env bash
# Tools the deploy/ checks use beyond Python: promtool (Debian package "prometheus") validates the
# alert rules and runs their unit tests (deploy/prometheus/alerts_test.yml). Installed when missing
# and when we may (root with apt-get); otherwise those checks are skipped with a reason.
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing promtool (Debian package prometheus)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null; }
  else
    echo "promtool not installed and apt-get unavailable: the promtool checks will be skipped" >&2
  fi
fi
