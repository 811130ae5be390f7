#!/usr/bin/env bash
# Install libusb-1.0 (Debian libusb-1.0-0): tflite-support's metadata extension
# (tensorflow_lite_support/metadata/cc/python/_pywrap_metadata_version.so) links it, so reading the
# TFLite Model Metadata of a user's .tflite (harness/zoo/tflite_file.py) needs it at import time.
# Idempotent. Without root or apt-get it only says what is missing (reading metadata then fails
# with an ImportError naming libusb-1.0.so.0, and its tests fail).
set -euo pipefail

have_libusb() {
  dpkg-query -W -f='${Status}' libusb-1.0-0 2>/dev/null | grep -q 'ok installed' && return 0
  ldconfig -p 2>/dev/null | grep -q 'libusb-1\.0\.so\.0'
}

if have_libusb; then
  echo "TFLite metadata: libusb-1.0 $(dpkg-query -W -f='${Version}' libusb-1.0-0 2>/dev/null || echo '(version unknown)')"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "TFLite metadata: missing libusb-1.0 and no root/apt-get to install it; reading a .tflite's metadata will fail." >&2
  echo "  Install the Debian package libusb-1.0-0 (tflite-support's _pywrap_metadata_version.so links libusb-1.0.so.0)." >&2
  exit 0
fi
apt-get update -qq
apt-get install -y -qq libusb-1.0-0 >/dev/null
have_libusb || { echo "TFLite metadata: installed libusb-1.0-0, but libusb-1.0.so.0 is still not found" >&2; exit 1; }
echo "TFLite metadata: installed libusb-1.0-0"
