// The MUX daemon: wires config, health (hub + host-agent stream + MUX probes), the
// controller, the BGP speaker, the dataplane and the admin/metrics endpoints. Everything
// here is edges and glue; decisions live in the controller's pure core.
import { type AdminHandler, AdminServer } from "../api/admin.ts";
import { bgpAdjIn, bgpAdjOut, bgpNeighbor, bgpNeighbors } from "../api/bgp.ts";
import { type Labelled, Metrics, type MetricsSources } from "../api/metrics.ts";
import type { MuxStatus } from "../api/status.ts";
import { BfdManager, type BfdStats } from "../bfd/index.ts";
import { type PeerOptions, Speaker } from "../bgp/speaker.ts";
import { type Config, formatConfigError, loadConfig, resolveSecret } from "../config/index.ts";
import type { FlowLookup } from "../dataplane/forwarder.ts";
import { HealthHub } from "../health/hub.ts";
import { hostKey } from "../health/keys.ts";
import { HealthStreamServer } from "../health/stream.ts";
import { backendKey } from "../health/targets.ts";
import type { ServiceModel } from "../lb/service.ts";
import { type FlowQuery, FlowQueryError } from "../packet/build.ts";
import { hostPort } from "../util/host-port.ts";
import { createLogger } from "../util/log.ts";
import { Controller } from "./controller.ts";
import { vipPrefix } from "./desired.ts";

/** What the daemon needs of a dataplane engine (the userspace worker, or none). */
export interface DataplanePort {
  start(): Promise<void>;
  apply(model: ServiceModel): void;
  /** Milliseconds since the forwarder last proved it is alive; undefined: no forwarder. */
  heartbeatAgeMs(): number | undefined;
  counters?(): ReturnType<NonNullable<MetricsSources["dataplane"]>>;
  /**
   * Which backend a flow maps to, for `vipmux flow` (read-only). Throws (or rejects with)
   * FlowQueryError when the flow is not a valid TCP/UDP 5-tuple.
   */
  lookup?(flow: FlowQuery): Promise<FlowLookup> | FlowLookup;
  stop(): Promise<void>;
}

export interface MuxOptions {
  configFile: string;
  dataplane: (config: Config) => DataplanePort;
  log?: (level: "debug" | "info" | "warn" | "error", msg: string) => void;
  /** A forwarder silent longer than this makes the MUX unhealthy. */
  heartbeatTimeoutMs?: number;
  /** Told when a reload starts and ends (systemd: RELOADING=1, READY=1; src/systemd/). */
  notify?: { reloading(): void; ready(): void };
}

/** Speaker options from the config; secrets resolved (validation already checked them). */
export function speakerOptions(cfg: Config): ConstructorParameters<typeof Speaker>[0] {
  const vipsOf = (names: string[] | undefined) =>
    names === undefined
      ? undefined
      : cfg.services
          .filter((s) => names.includes(s.name))
          .map((s) => ({ prefix: vipPrefix(s.vip) }));
  const peers: PeerOptions[] = cfg.bgp.peers.map((p) => {
    const password = p.password ? resolveSecret(p.password) : undefined;
    if (password && !password.ok) throw new Error(`bgp peer ${p.address}: ${password.error}`);
    const allow = vipsOf(p.export.services);
    return {
      address: p.address,
      asn: p.asn,
      ...(p.description ? { name: p.description } : {}),
      port: p.port,
      ...(p.localAddress ? { localAddress: p.localAddress } : {}),
      passive: p.passive,
      holdTimeSec: p.holdTime,
      connectRetryMs: p.connectRetry,
      ...(password?.ok ? { md5Password: password.value } : {}),
      ...(p.multihopTtl !== undefined ? { multihopTtl: p.multihopTtl } : {}),
      ...(p.ttlSecurity ? { gtsmHops: 1 } : {}),
      maxPrefixes: {
        limit: p.maxPrefixes.limit,
        warningPercent: p.maxPrefixes.warning,
        restartAfterMs: p.maxPrefixes.restartAfter,
      },
      export: {
        ...(allow ? { allow } : {}),
        ...(p.export.med !== undefined ? { med: p.export.med } : {}),
        prepend: p.export.asPathPrepend,
        communities: p.export.communities,
        largeCommunities: p.export.largeCommunities,
        ...(p.export.nextHop ? { nextHop: p.export.nextHop } : {}),
        ...(p.export.nextHopV6 ? { nextHop6: p.export.nextHopV6 } : {}),
      },
    };
  });
  const { host: listenHost, port: listenPort } = hostPort(cfg.bgp.listen);
  return {
    asn: cfg.bgp.asn,
    routerId: cfg.node.routerId,
    // Listen only while a peer waits for us to be connected to (passive; also one a reload
    // adds): otherwise the MUX connects out and port 179 stays free for a router on the same
    // host.
    listen: { host: listenHost, port: listenPort, onlyWithPassivePeers: true },
    maxPrefixesTotal: cfg.bgp.maxPrefixesTotal,
    ...(cfg.bgp.nextHopV6 ? { nextHop6: cfg.bgp.nextHopV6 } : {}),
    coalesceMs: cfg.bgp.coalesceMs,
    peers,
  };
}

export class MuxDaemon {
  config: Config;
  readonly speaker: Speaker;
  readonly hub = new HealthHub();
  readonly controller: Controller;
  readonly metrics: Metrics;
  private readonly dataplane: DataplanePort;
  private readonly healthServer: HealthStreamServer;
  private admin?: AdminServer;
  private bfd?: BfdManager;
  private bfdStats?: BfdStats;
  private bfdPoll?: NodeJS.Timeout;
  private readonly opts: MuxOptions;
  private readonly log: NonNullable<MuxOptions["log"]>;
  private readonly startedAt = Date.now();
  private stopping = false;
  /** health.token (and health.next-token while rotating), re-read at every reload. */
  private healthSecrets: string[];

  constructor(config: Config, opts: MuxOptions) {
    this.config = config;
    this.opts = opts;
    this.log = opts.log ?? createLogger(`mux ${config.node.name}`);
    this.speaker = new Speaker({
      ...speakerOptions(config),
      log: (l, m) => this.log(l, `bgp: ${m}`),
    });
    this.dataplane = opts.dataplane(config);
    this.hub.sync(config);
    this.healthSecrets = healthSecrets(config);
    this.healthServer = new HealthStreamServer({
      // Each host proves its own key, derived from the cluster secret(s) in force now.
      keysFor: (host) => this.healthSecrets.map((secret) => hostKey(secret, host)),
      mux: config.node.name,
      owns: this.hub.ownsKey,
      knownHost: this.hub.knownHost,
    });
    this.healthServer.on("report", (host, backends, full) => this.hub.report(host, backends, full));
    this.healthServer.on("rejected", (reason, peer) =>
      this.log("warn", `health stream: rejected ${peer}: ${reason}`),
    );
    this.controller = new Controller({
      config,
      backendUp: this.hub.backendUp,
      muxHealthy: () => this.muxHealthy(),
      routes: {
        announce: (r) => this.speaker.announce(r.prefix, { communities: r.communities }),
        withdraw: (prefix) => this.speaker.withdraw(prefix),
      },
      tables: { apply: (m) => this.dataplane.apply(m) },
    });
    this.hub.on("probe", (key, ms) =>
      this.metrics.probeDuration.observe({ service: key.split("/")[0]! }, ms / 1000),
    );
    this.hub.on("change", (key, up, why) => {
      this.log("info", `backend ${key} ${up ? "up" : "down"} (${why})`);
      this.controller.poke();
    });
    this.controller.on("muxHealth", (ok) =>
      this.log(
        ok ? "info" : "warn",
        `MUX ${ok ? "healthy again" : "unhealthy: withdrawing all VIPs"}`,
      ),
    );
    this.controller.on("tablesFailed", (e) =>
      this.log("error", `forwarder did not take its tables: ${e.message}`),
    );
    this.controller.on("reconcileFailed", (e) =>
      this.log("error", `reconcile failed, last applied state kept: ${e.stack ?? e.message}`),
    );
    this.speaker.on("peer-up", (e) =>
      this.log("info", `peer ${e.peer} up (hold ${e.holdTimeSec}s, ${e.families.join("+")})`),
    );
    this.speaker.on("peer-down", (e) => this.log("warn", `peer ${e.peer} down: ${e.reason}`));
    this.metrics = new Metrics({
      bgpPeers: () =>
        this.speaker.peers().map((p) => ({
          peer: p.address,
          name: p.name,
          asn: p.asn,
          up: p.state === "Established",
          established: p.counters.established,
          uptimeSeconds: (p.establishedForMs ?? 0) / 1000,
          messagesIn: {
            update: p.counters.updatesIn,
            notification: p.counters.notificationsIn,
            route_refresh: p.counters.routeRefreshIn,
            other:
              p.counters.messagesIn -
              p.counters.updatesIn -
              p.counters.notificationsIn -
              p.counters.routeRefreshIn,
          },
          messagesOut: {
            update: p.counters.updatesOut,
            notification: p.counters.notificationsOut,
            other: p.counters.messagesOut - p.counters.updatesOut - p.counters.notificationsOut,
          },
          prefixesSent: p.prefixesSent,
          prefixesReceived: p.prefixesReceived,
        })),
      vips: () =>
        this.controller
          .status()
          .services.map((s) => ({ service: s.name, vip: s.vip, announced: s.announced })),
      backends: () =>
        this.config.services.flatMap((s) =>
          s.backends.map((b) => ({
            service: s.name,
            dip: b.dip,
            up: this.hub.backendUp(backendKey(s.name, b.dip)) === true,
          })),
        ),
      muxHealthy: () => this.controller.status().muxHealthy,
      bfdSessions: () =>
        (this.bfdStats?.peers ?? []).map((p) => ({ peer: p.peer, up: p.state === "Up" })),
      healthRejects: (): Labelled =>
        [...this.healthServer.rejects].map(([reason, n]) => [{ reason }, n]),
      dataplane: () => this.dataplane.counters?.(),
    });
  }

  /** Where the health stream listens (the port when `health.listen` asked for 0), if it does. */
  healthListenAddress(): { address: string; port: number } | undefined {
    const a = this.healthServer.server.address();
    return a && typeof a === "object" ? { address: a.address, port: a.port } : undefined;
  }

  /** MUX self-health: the forwarder is alive and forwarding. */
  private muxHealthy(): boolean {
    const age = this.dataplane.heartbeatAgeMs();
    return age === undefined || age < (this.opts.heartbeatTimeoutMs ?? 1000);
  }

  /**
   * The forwarder's heartbeat is fresh (or there is no forwarder): systemd's watchdog is
   * fed only then (src/systemd/mux.ts).
   */
  forwarderAlive(): boolean {
    return this.muxHealthy();
  }

  async start(): Promise<void> {
    // The admin socket first: it is also the instance lock, so a second vipmux with the
    // same config stops here, before it opens BGP sessions that would collide with ours.
    this.admin = new AdminServer(this.config.api.socket, this.routes(), {
      group: this.config.api.socketGroup,
    });
    await this.admin.listen();
    await this.dataplane.start();
    if (this.config.health.listen !== "off") {
      const { host, port } = hostPort(this.config.health.listen);
      await this.healthServer.listen(port, host);
    }
    await this.speaker.start();
    await this.syncBfd(this.config);
    this.controller.start();
    if (this.config.api.metrics) {
      const port = await this.metrics.listen(this.config.api.metrics);
      this.log("info", `metrics on ${this.config.api.metrics} (port ${port})`);
    }
    this.log(
      "info",
      `vipmux ${this.config.node.name} running: ${this.config.services.length} services, ${this.config.bgp.peers.length} peers`,
    );
  }

  /**
   * BFD for the peers that ask for it (RFC 5880/5881): a BFD Down takes that BGP session
   * down at once and it comes back only once BFD is Up again (RFC 5882). The sessions run
   * in their own worker thread, so a busy main thread cannot make them miss packets.
   */
  private async syncBfd(cfg: Config): Promise<void> {
    const wanted = cfg.bgp.peers.filter((p) => p.bfd);
    if (wanted.length === 0 && !this.bfd) return;
    if (!this.bfd) {
      this.bfd = await BfdManager.start({ log: (level, msg) => this.log(level, `bfd: ${msg}`) });
      this.bfd.on("down", (e) => {
        // The peer switched BFD off on purpose (AdminDown): not a path failure.
        if (e.remoteState === "AdminDown") return;
        this.log("warn", `bfd: ${e.peer} ${e.from} -> ${e.to} (${e.diag}): taking BGP down`);
        this.speaker.peerDown(e.peer, `BFD down: ${e.diag}`);
      });
      this.bfd.on("up", (e) => {
        if (this.speaker.peerStart(e.peer))
          this.log("info", `bfd: ${e.peer} up again: BGP may reconnect`);
      });
      this.bfdPoll = setInterval(() => {
        this.bfd
          ?.stats()
          .then((st) => {
            this.bfdStats = st;
          })
          .catch(() => {});
      }, 1000);
      this.bfdPoll.unref?.();
    }
    const bfd = this.bfd;
    const keep = new Set(wanted.map((p) => p.address));
    for (const p of this.bfdPeers) if (!keep.has(p)) await bfd.removePeer(p);
    for (const p of wanted) {
      await bfd.addPeer({
        peer: p.address,
        ...(p.localAddress ? { local: p.localAddress } : {}),
        intervalMs: p.bfd!.intervalMs,
        multiplier: p.bfd!.multiplier,
        passive: p.bfd!.passive,
      });
    }
    this.bfdPeers = keep;
  }

  private bfdPeers = new Set<string>();

  /**
   * Applies BGP peer changes of a reload: a peer whose session parameters changed is reset
   * (and only that one); a changed export policy is applied without a reset; added peers
   * connect, removed peers get Cease / Peer De-configured.
   */
  private async reloadPeers(prev: Config, next: Config): Promise<void> {
    const before = new Map(speakerOptions(prev).peers.map((p) => [p.address, p]));
    const after = new Map(speakerOptions(next).peers.map((p) => [p.address, p]));
    const sessionKey = (p: PeerOptions) => JSON.stringify({ ...p, export: undefined });
    for (const addr of before.keys())
      if (!after.has(addr)) {
        this.log("info", `reload: removing peer ${addr}`);
        await this.speaker.removePeer(addr);
      }
    for (const [addr, p] of after) {
      const old = before.get(addr);
      if (!old) {
        this.log("info", `reload: adding peer ${addr}`);
        await this.speaker.addPeer(p);
      } else if (sessionKey(old) !== sessionKey(p)) {
        this.log("info", `reload: session parameters of ${addr} changed: resetting that session`);
        await this.speaker.removePeer(addr, "session parameters changed");
        await this.speaker.addPeer(p);
      } else if (JSON.stringify(old.export) !== JSON.stringify(p.export)) {
        this.log("info", `reload: export policy of ${addr} changed (no session reset)`);
        this.speaker.setExportPolicy(addr, p.export ?? {});
      }
    }
  }

  /** Re-reads the config file; an invalid file changes nothing. */
  async reload(): Promise<{ ok: true } | { ok: false; errors: string[] }> {
    this.opts.notify?.reloading();
    try {
      return await this.reloadOnce();
    } catch (e) {
      // Whatever failed, the daemon stays up, keeps its VIPs and says why.
      this.metrics.configReloads.inc({ result: "failed" });
      const message = `reload failed: ${(e as Error).message}`;
      this.log("error", message);
      return { ok: false, errors: [message] };
    } finally {
      this.opts.notify?.ready();
    }
  }

  private async reloadOnce(): Promise<{ ok: true } | { ok: false; errors: string[] }> {
    const r = loadConfig(this.opts.configFile);
    if (!r.ok) {
      this.metrics.configReloads.inc({ result: "invalid" });
      const errors = r.error.map(formatConfigError);
      this.log("error", `reload refused, running config kept:\n  ${errors.join("\n  ")}`);
      return { ok: false, errors };
    }
    const unsupported = reloadRefusal(this.config, r.value);
    if (unsupported) {
      this.metrics.configReloads.inc({ result: "refused" });
      this.log("error", `reload refused, running config kept: ${unsupported}`);
      return { ok: false, errors: [unsupported] };
    }
    const prev = this.config;
    this.config = r.value;
    // Secrets are re-read: a rotated token file takes effect, a revoked key stops working.
    this.healthSecrets = healthSecrets(r.value);
    const revoked = this.healthServer.revalidate();
    if (revoked > 0)
      this.log("info", `reload: ${revoked} health stream(s) dropped: key no longer accepted`);
    this.hub.sync(r.value);
    this.healthServer.resync();
    this.controller.reload(r.value);
    await this.reloadPeers(prev, r.value);
    await this.syncBfd(r.value);
    this.metrics.configReloads.inc({ result: "applied" });
    this.log("info", "config reloaded");
    return { ok: true };
  }

  status(): MuxStatus {
    const c = this.controller.status();
    return {
      node: this.config.node.name,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      muxHealthy: c.muxHealthy,
      forwarderHeartbeatAgeMs: this.dataplane.heartbeatAgeMs() ?? null,
      peers: this.speaker.peers().map((p) => ({
        name: p.name,
        address: p.address,
        asn: p.asn,
        state: p.state,
        establishedForMs: p.establishedForMs,
        prefixesSent: p.prefixesSent,
        prefixesReceived: p.prefixesReceived,
        lastError: p.lastError,
      })),
      bfd: (this.bfdStats?.peers ?? []).map((p) => ({ ...p })),
      services: c.services,
      announced: c.announced,
      backends: this.config.services.flatMap((s) =>
        s.backends.map((b) => {
          const key = backendKey(s.name, b.dip);
          return {
            service: s.name,
            dip: b.dip,
            host: b.host,
            weight: b.weight,
            healthy: this.hub.backendUp(key) ?? null,
            drained: this.controller.adminState().drainedBackends.has(key),
          };
        }),
      ),
      admin: {
        muxDraining: this.controller.adminState().muxDrainSinceMs !== undefined,
        servicesDraining: [...this.controller.adminState().serviceDrains.keys()],
      },
      hostAgents: {
        expected: [...this.hub.agentHosts()].sort(),
        connected: this.hub.aliveAgents().sort(),
      },
    };
  }

  private routes(): Record<string, AdminHandler> {
    const drain =
      (on: boolean): AdminHandler =>
      ({ body }) => {
        const b = (body ?? {}) as { kind?: string; name?: string };
        if (b.kind === "mux") {
          if (on) this.controller.drainMux();
          else this.controller.undrainMux();
          return { status: 200, body: { ok: true } };
        }
        if (b.kind === "service" && b.name) {
          const found = on
            ? this.controller.drainService(b.name)
            : this.controller.undrainService(b.name) || true;
          return found
            ? { status: 200, body: { ok: true } }
            : { status: 404, body: { error: `no service "${b.name}"` } };
        }
        if (b.kind === "backend" && b.name) {
          return this.controller.drainBackend(b.name, on)
            ? { status: 200, body: { ok: true } }
            : { status: 404, body: { error: `no backend "${b.name}" (expected SERVICE/DIP)` } };
        }
        return {
          status: 400,
          body: { error: "expected { kind: mux | service | backend, name? }" },
        };
      };
    return {
      "GET /v1/status": () => ({ status: 200, body: this.status() }),
      "GET /v1/bgp/neighbors": () => ({
        status: 200,
        body: bgpNeighbors(this.speaker, this.bfdStats?.peers ?? []),
      }),
      "GET /v1/bgp/neighbor": ({ query }) =>
        bgpNeighbor(this.speaker, this.bfdStats?.peers ?? [], query.get("address")),
      "GET /v1/bgp/neighbor/adj-out": ({ query }) => bgpAdjOut(this.speaker, query.get("address")),
      "GET /v1/bgp/neighbor/adj-in": ({ query }) => bgpAdjIn(this.speaker, query.get("address")),
      "POST /v1/drain": drain(true),
      "POST /v1/undrain": drain(false),
      "POST /v1/reload": async () => {
        const r = await this.reload();
        return { status: r.ok ? 200 : 422, body: r };
      },
      "GET /v1/flow": async ({ query }) => {
        if (!this.dataplane.lookup)
          return { status: 501, body: { error: "this dataplane engine has no flow lookup" } };
        const num = (name: string) => {
          const v = query.get(name);
          return v === null || v.trim() === "" ? Number.NaN : Number(v);
        };
        const flow: FlowQuery = {
          protocol: query.get("protocol") ?? "tcp",
          src: query.get("src") ?? "",
          sport: num("sport"),
          dst: query.get("dst") ?? "",
          dport: num("dport"),
        };
        try {
          return { status: 200, body: await this.dataplane.lookup(flow) };
        } catch (e) {
          if (e instanceof FlowQueryError) return { status: 400, body: { error: e.message } };
          throw e;
        }
      },
    };
  }

  /** Graceful stop: withdraw everything with a shutdown communication, then close. */
  async stop(reason = "vipmux shutting down"): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.controller.stop();
    await this.speaker.shutdown(reason);
    // After BGP's Cease, so the router sees an administrative stop, not a path failure.
    if (this.bfdPoll) clearInterval(this.bfdPoll);
    await this.bfd?.shutdown();
    await this.admin?.close();
    await this.metrics.close();
    await this.healthServer.close();
    this.hub.stop();
    await this.dataplane.stop();
  }
}

/**
 * What a reload cannot change without a restart (the process identity and its listening
 * sockets); undefined when the new config can be applied live.
 */
export function reloadRefusal(prev: Config, next: Config): string | undefined {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(prev.node, next.node)) return "node (name, router-id) changes need a restart";
  if (prev.bgp.asn !== next.bgp.asn) return "bgp.asn changes need a restart";
  if (prev.bgp.listen !== next.bgp.listen) return "bgp.listen changes need a restart";
  if (prev.bgp.maxPrefixesTotal !== next.bgp.maxPrefixesTotal)
    return "bgp.max-prefixes-total changes need a restart";
  if (!same(prev.dataplane, next.dataplane)) return "dataplane changes need a restart";
  if (!same(prev.api, next.api)) return "api changes need a restart";
  if (prev.health.listen !== next.health.listen) return "health.listen changes need a restart";
  return undefined;
}

/** The cluster secrets host keys derive from: health.token, then health.next-token. */
function healthSecrets(config: Config): string[] {
  const out: string[] = [];
  for (const s of [config.health.token, config.health.nextToken]) {
    if (s === undefined) continue;
    const r = resolveSecret(s);
    if (r.ok) out.push(r.value);
  }
  return out;
}
