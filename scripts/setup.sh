#!/usr/bin/env bash
# Installs everything vipmux's build, lab and tests need on Debian 12 (as root):
# Debian packages, Node >= 22.12 (Node 24 from the npm registry when the system one is
# older), npm dependencies, and the build. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(frr bird2 gobgpd exabgp iproute2 nftables tcpdump iputils-ping procps psmisc
  socat netcat-openbsd curl ca-certificates kmod python3 ethtool prometheus
  # systemd-analyze and systemd-sysusers check configs/systemd/ (test/unit/systemd/units.test.ts);
  # its postinst adds its system users but starts nothing where systemd is not PID 1
  # (containers, CI): it calls systemctl only when /run/systemd/system exists.
  systemd
  # strace: the install walkthrough test checks the units' SystemCallFilter= against the
  # system calls the daemons really make (test/integration/install-walkthrough.test.ts).
  strace)

log() { printf 'setup: %s\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; run as root (or install them) first"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the packaged daemons where systemd runs; the lab runs its own copies.
for svc in frr bird gobgpd exabgp; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

node_ok() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'
}
# shellcheck source=scripts/env.sh
source scripts/env.sh
if ! node_ok; then
  log "system Node $(node --version 2>/dev/null || echo none) is older than 22.12: installing Node 24 under .node/"
  mkdir -p .node
  npm install --prefix .node --no-save --no-audit --no-fund --loglevel=error node@24 >/dev/null
  source scripts/env.sh
  node_ok || { log "could not provision Node >= 22.12"; exit 1; }
fi
log "node $(node --version), npm $(npm --version)"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "build"
npm run --silent build
