#!/usr/bin/env bash
# Debian packages the platform needs beyond Python: bubblewrap confines the python tool's
# untrusted code (mount/PID/network namespaces) and libseccomp2 compiles its seccomp filter.
# A no-op when they are present; the python tool fails closed (refuses to run) without them.
set -euo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install ${missing[*]} with your system's package manager (the python tool needs them)" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
