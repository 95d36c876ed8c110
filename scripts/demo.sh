#!/usr/bin/env bash
# The lab demo: installs what it needs, builds, and brings the canonical topology up in
# network namespaces (client, FRR edge, two MUXes, two hosts, four backend VMs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
TOPO=containerlab/vipmux.clab.yml
node dist/cli/main.js lab down -t "$TOPO" >/dev/null 2>&1 || true
node dist/cli/main.js lab up -t "$TOPO"
node dist/cli/main.js lab status -t "$TOPO"
echo
node dist/cli/main.js lab exec edge -- vtysh -c "show bgp summary"
cat <<'MSG'

The lab is up. Try:
  node dist/cli/main.js lab exec client -- ping -c 3 198.51.100.2
  node dist/cli/main.js lab exec edge -- vtysh -c "show ip route"
  node dist/cli/main.js lab down
MSG
