#!/usr/bin/env bash
# The lab demo: installs what it needs, builds, and brings the canonical system up in
# network namespaces: client, FRR edge, two MUXes (vipmux run), two hosts (vipmux
# host-agent), four backend VMs. Then shows a few requests through the VIPs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
TOPO=containerlab/vipmux.clab.yml
VIPMUX=(node dist/cli/main.js)
"${VIPMUX[@]}" lab down -t "$TOPO" >/dev/null 2>&1 || true
"${VIPMUX[@]}" lab up -t "$TOPO"
echo "waiting for the MUXes to announce the VIPs (BGP) ..."
for _ in $(seq 1 60); do
  if "${VIPMUX[@]}" lab exec edge -- ip route show 20.20.20.100 2>/dev/null | grep -q "192.0.2.6"; then break; fi
  sleep 1
done
echo
"${VIPMUX[@]}" lab exec edge -- vtysh -c "show ip route 20.20.20.100"
echo "requests from the client to the VIP (each a new connection, spread by Maglev):"
for _ in 1 2 3 4 5 6; do "${VIPMUX[@]}" lab exec client -- curl -s -m 3 http://20.20.20.100/ || true; done
"${VIPMUX[@]}" lab exec client -- curl -s -m 3 'http://[2001:db8:f::100]/' || true
echo
"${VIPMUX[@]}" lab exec mux1 -- "${VIPMUX[@]}" status -s /run/vipmux/mux1.sock || true
cat <<'MSG'

The lab is up. Try:
  node dist/cli/main.js lab exec client -- curl -s http://20.20.20.100/
  node dist/cli/main.js lab exec mux1 -- node dist/cli/main.js drain mux -s /run/vipmux/mux1.sock
  node dist/cli/main.js lab exec edge -- vtysh -c "show bgp ipv4 unicast 20.20.20.100/32"
  node dist/cli/main.js lab down
MSG
