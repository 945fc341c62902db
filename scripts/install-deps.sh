#!/usr/bin/env bash
# Installs the Debian packages OpLog builds against, if any is missing: LMDB and zlib (the
# library), pkg-config (SwiftPM finds them through it). Pass extra package names as arguments.
set -euo pipefail
packages=(liblmdb-dev zlib1g-dev pkg-config "$@")
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "error: no Swift toolchain on PATH; install Swift 6.1 or later (https://www.swift.org/install/linux/)" >&2
    exit 1
fi
