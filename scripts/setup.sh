#!/usr/bin/env bash
# Shared set-up for the README's two commands: installs the Debian packages
# twill drives (only those missing, so a second run is quick), then the npm
# dependencies, then builds. Must run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "twill: run this as root (it installs Debian packages and creates network namespaces)" >&2
  exit 1
fi

# command -> Debian package
declare -A NEED=(
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [ip]=iproute2
  [nft]=nftables
  [bird]=bird2
  [iperf3]=iperf3
  [traceroute]=traceroute
  [ping]=iputils-ping
  [vtysh]=frr
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # RUNLEVEL=1 keeps the packages' init scripts from starting daemons (an etcd
  # on the machine's own port 2379): twill starts its own, in temp dirs.
  RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "==> build"
npm run --silent build
