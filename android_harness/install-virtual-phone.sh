#!/usr/bin/env bash
# Install what the virtual phone needs (android_harness/virtual_phone.py: a real adbd in private
# namespaces on this host, so the device transport is tested without a phone): Debian's adbd and adb
# 34.x (bookworm: from bookworm-backports) and a static busybox. qemu-user 8.0+ comes from
# install-qemu.sh; util-linux (unshare, nsenter) and a C compiler are assumed.
# Idempotent. Without root or apt-get it only says what is missing (the virtual-phone tests then skip).
set -euo pipefail

static_busybox() {
  [ -x /bin/busybox ] || return 1
  if command -v file >/dev/null 2>&1; then
    LC_ALL=C file -L /bin/busybox | grep -Eq 'statically linked|static-pie linked'
  else
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'
  fi
}

android=() others=()
[ -x /usr/sbin/adbd ] || android+=(adbd)
command -v adb >/dev/null 2>&1 || android+=(adb)
static_busybox || others+=(busybox-static)

if [ ${#android[@]} -eq 0 ] && [ ${#others[@]} -eq 0 ]; then
  echo "virtual phone: adbd $(dpkg-query -W -f='${Version}' adbd 2>/dev/null || echo '(version unknown)'), static busybox"
  exit 0
fi
missing="${android[*]} ${others[*]}"
missing="${missing# }"; missing="${missing% }"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "virtual phone: missing $missing and no root/apt-get to install them; the virtual-phone tests will skip." >&2
  echo "  Install the Debian packages adbd and adb (34.x; bookworm: from bookworm-backports) and busybox-static." >&2
  exit 0
fi
. "$(dirname "$0")/apt-backports.sh"
[ ${#android[@]} -eq 0 ] || apt_install_backported "${android[@]}"
[ ${#others[@]} -eq 0 ] || { apt-get update -qq; apt-get install -y -qq "${others[@]}" >/dev/null; }
if [ ! -x /usr/sbin/adbd ] || ! command -v adb >/dev/null 2>&1 || ! static_busybox; then
  echo "virtual phone: installed $missing, but adbd, adb or a static /bin/busybox is still missing" >&2
  exit 1
fi
echo "virtual phone: installed $missing"
