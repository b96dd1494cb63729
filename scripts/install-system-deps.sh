#!/usr/bin/env bash
# Debian packages the platform needs beyond Python, by purpose; installs only what is missing.
#
#   runtime  bubblewrap + libseccomp2: the python tool's kernel sandbox (it fails closed without them)
#   test     prometheus (for promtool): the deploy checks validate alert rules and run their unit tests;
#            chromium: the dashboard test takes a screenshot of the Streamlit dashboard in headless Chromium
#   bench    wrk: the load generator of benchmarks/api_overhead.py
#
# Usage: scripts/install-system-deps.sh runtime [test] [bench]
set -euo pipefail

declare -A COMMAND_OF=([bubblewrap]=bwrap [prometheus]=promtool [wrk]=wrk [chromium]=chromium)
packages=()
for purpose in "${@:-runtime}"; do
  case "$purpose" in
    runtime) packages+=(bubblewrap libseccomp2) ;;
    test) packages+=(prometheus chromium) ;;
    bench) packages+=(wrk) ;;
    *) echo "unknown purpose: $purpose (runtime, test, bench)" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${packages[@]}"; do
  if [ "$package" = libseccomp2 ]; then
    ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=("$package")
  elif ! command -v "${COMMAND_OF[$package]}" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install ${missing[*]} with your system's package manager" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
