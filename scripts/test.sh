#!/usr/bin/env bash
# The test command: installs what the tests need, builds, then runs the unit and the
# integration tests (the latter need root: they create network namespaces and run FRR).
# Extra arguments go to vitest, e.g. `bash scripts/test.sh --project unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec npx vitest run "$@"
