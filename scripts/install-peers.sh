#!/usr/bin/env bash
# Installs the Debian packages the tests run against (real peers, no mocks):
# apt-get as root, through sudo when that works without a password, else names what is missing.
set -euo pipefail

PACKAGES=(dcmtk orthanc orthanc-python orthanc-dicomweb dicom3tools redis-server postgresql iproute2
  chromium)
# One command that proves each package is there.
declare -A PROBE=(
  [dcmtk]=storescu
  [orthanc]=Orthanc
  [dicom3tools]=dciodvfy
  [redis-server]=redis-server
  [iproute2]=ip
  [chromium]=chromium
)

missing=()
for package in "${PACKAGES[@]}"; do
  probe=${PROBE[$package]:-}
  if [[ -n "$probe" ]]; then
    command -v "$probe" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$probe" >/dev/null 2>&1 || missing+=("$package")
  else
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "installing test peers: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  apt_get=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  apt_get=(sudo apt-get)
else
  echo "cannot install without root: run as root or install these Debian packages:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  echo "tests needing them are skipped (and fail under CI=true)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
"${apt_get[@]}" update -q
"${apt_get[@]}" install -y -q --no-install-recommends "${missing[@]}"
