# Sourced by the scripts: puts a Node >= 22.12 first on PATH (the one scripts/setup.sh
# provisioned under .node/ when the system Node is older).
_vipmux_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$_vipmux_root/.node/node_modules/.bin/node" ]; then
  export PATH="$_vipmux_root/.node/node_modules/.bin:$PATH"
fi
export PATH="$_vipmux_root/node_modules/.bin:$PATH"
unset _vipmux_root
