#!/usr/bin/env bash
# make setup: install what daolinet needs on a bare Debian machine, idempotently.
#  - Debian packages (only when one is missing), without starting the system-wide
#    Open vSwitch service: a temporary policy-rc.d forbids service starts while apt runs.
#  - .venv with daolinet installed editable, with its test extras (redone only when
#    pyproject.toml changed); they include Playwright, which drives Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(openvswitch-switch openvswitch-common iproute2 ethtool iperf3 busybox-static docker.io
          iputils-ping traceroute tcpdump util-linux procps python3-venv etcd-server etcd-client
          chromium)  # chromium: the live map's browser tests (Playwright drives it; no browser download)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]}; run make setup as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
    trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.daolinet-installed
if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/daolinet)"
