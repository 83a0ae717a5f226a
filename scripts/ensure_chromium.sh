#!/usr/bin/env bash
# Make sure Debian's Chromium is installed at /usr/bin/chromium (for cryptolab's browser tests).
#
# Usage: scripts/ensure_chromium.sh
#
# Idempotent: does nothing when /usr/bin/chromium exists. Otherwise runs
# `apt-get update && apt-get install -y chromium` (as root, or through sudo).
# CHROMIUM=/path/to/chromium skips the install and only checks that binary.
set -euo pipefail

die() {
  printf 'ensure_chromium: error: %s\n' "$*" >&2
  exit 1
}

bin="${CHROMIUM:-/usr/bin/chromium}"

if [[ ! -x "$bin" ]]; then
  [[ -z "${CHROMIUM:-}" ]] || die "CHROMIUM=$bin is not an executable file"
  command -v apt-get >/dev/null 2>&1 ||
    die "$bin is missing and apt-get is not available: install Chromium with your package manager"
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "$bin is missing; installing it needs root (or sudo)"
    sudo=(sudo)
  fi
  printf 'ensure_chromium: installing Debian package chromium (apt-get)\n' >&2
  if ! "${sudo[@]}" apt-get update -q >&2; then
    die "apt-get update failed: cannot install chromium (is a Debian mirror reachable?)"
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; then
    die "apt-get install chromium failed (see the output above)"
  fi
  [[ -x "$bin" ]] || die "chromium was installed but $bin is missing"
fi

if ! version="$("$bin" --version 2>/dev/null)"; then
  die "$bin does not run ('$bin --version' failed)"
fi
printf 'ensure_chromium: %s (%s)\n' "$bin" "$version" >&2
