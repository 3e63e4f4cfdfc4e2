#!/usr/bin/env bash
# Installs everything simnet needs on Debian 12, idempotently: system packages and the project
# (with its test tools) in .venv. Run as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(coturn nftables iptables iproute2 conntrack iputils-ping iperf3 tcpdump
          libnetfilter-queue-dev python3-venv gcc chromium tayga unbound
          golang-go golang-github-pion-webrtc.v3-dev golang-golang-x-net-dev golang-golang-x-sys-dev)
PACKAGES+=(firefox-esr)  # peer: firefox (headless, driven over WebDriver BiDi)
PACKAGES+=(squid)  # servers of kind http-proxy (simnet starts its own per run; the system service is left alone)
PACKAGES+=(libnss3-tools)  # certutil: a Firefox profile trusts the run's CA (TURN over TLS)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (simnet builds network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Debian starts coturn as a service on install unless told not to; simnet runs its own.
  # Likewise unbound (simnet runs its own per run, in namespaces).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

# Python 3.11 for the venv: the machine's own if it is 3.11+, else Debian's.
PY=python3
if ! $PY -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then PY=/usr/bin/python3.11; fi
if [ ! -x .venv/bin/python ]; then
  $PY -m venv .venv
fi
stamp=.venv/.simnet-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
# The pion peer's Go agent, built offline from Debian's Go sources (only when its source changed).
.venv/bin/python -m simnet.peer.pion.build
# `simnet` on PATH for the README's commands.
ln -sf "$PWD/.venv/bin/simnet" /usr/local/bin/simnet
echo "setup.sh: ready ($(.venv/bin/simnet --version 2>/dev/null || echo simnet installed))"
