#!/usr/bin/env bash
# Install the Debian packages Herald needs to build, test and demo, if any
# are missing. As root this runs apt-get; otherwise it prints the command.
set -euo pipefail

packages=(cmake make gcc pkg-config libzmq3-dev libczmq-dev libprotobuf-c-dev
          protobuf-c-compiler libcmocka-dev liblmdb-dev libsqlite3-dev sqlite3 jq procps bc
          valgrind)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "herald: missing packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "herald: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
