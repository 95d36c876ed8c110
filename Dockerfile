# The vipmux image used by the containerlab topology for MUX and host nodes.
#   docker build -t ghcr.io/vipmux/vipmux:latest .
# One image, two roles: `vipmux run --config ...` (MUX) and `vipmux host-agent --config ...`.
FROM node:24-bookworm-slim AS build
WORKDIR /src
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY binding.gyp ./
COPY native ./native
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# The host agent programs the kernel with iproute2/netlink and nftables; the rest are the
# tools an operator reaches for inside a lab node. tini is PID 1 (see ENTRYPOINT).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables conntrack iputils-ping tcpdump curl procps tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/vipmux
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/build ./build
COPY --from=build /src/schemas ./schemas
COPY configs ./configs
RUN chmod +x dist/cli/main.js && ln -s /opt/vipmux/dist/cli/main.js /usr/local/bin/vipmux
# tini as PID 1 reaps orphans (an exec probe's leftovers, killed with its process group:
# src/health/probes.ts) and forwards SIGTERM/SIGHUP to vipmux; without an init they
# would stay zombies under PID 1. See docs/security.md, "Exec probes".
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["vipmux", "--help"]
