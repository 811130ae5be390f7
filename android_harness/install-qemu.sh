#!/usr/bin/env bash
# Install qemu-user 8.0+ for the arm64 platform (the runtimes' ARM builds under emulation).
# Debian bookworm ships 7.2, under which LiteRT crashes; bookworm-backports has 10.x.
# Idempotent. Without root or apt-get it only says what is missing (the arm64 cases then skip).
set -euo pipefail

have_qemu() {
  for q in "${HARNESS_QEMU:-}" qemu-aarch64-static qemu-aarch64; do
    [ -n "$q" ] || continue
    command -v "$q" >/dev/null 2>&1 || continue
    v=$("$q" --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p' | head -n1)
    [ -n "$v" ] && [ "$v" -ge 8 ] && { echo "arm64 platform: $q $("$q" --version | head -n1 | sed 's/.*version //')"; return 0; }
  done
  return 1
}

have_qemu && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "arm64 platform: no qemu-user 8.0+ here and no root/apt-get to install it; the arm64 cases will skip." >&2
  echo "  Install qemu-user-static 8.0 or later (Debian bookworm: from bookworm-backports) to run them." >&2
  exit 0
fi
. "$(dirname "$0")/apt-backports.sh"
apt_install_backported qemu-user-static
have_qemu || { echo "arm64 platform: installed qemu-user-static, but no qemu-aarch64 8.0+ is on the PATH" >&2; exit 1; }
