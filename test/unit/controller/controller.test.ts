// The reconcile loop with recording sinks and a hand-driven clock: what is announced,
// withdrawn and programmed for each combination of health, admin state and MUX health.
import { describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../../src/config/index.ts";
import { Controller, type RouteSink, type TableSink } from "../../../src/controller/controller.ts";
import {
  computeDesired,
  type DecisionState,
  describeVipReason,
  diffRoutes,
  GRACEFUL_SHUTDOWN,
  noAdmin,
} from "../../../src/controller/desired.ts";
import { HealthHub } from "../../../src/health/hub.ts";
import type { ServiceModel } from "../../../src/lb/service.ts";

const CONFIG = `node: { name: mux1, router-id: 192.0.2.2 }
bgp:
  asn: 65101
  next-hop-v6: "2001:db8:0:1::2"
  drain: { wait: 10s }
  peers: [ { address: 192.0.2.1, asn: 65000 } ]
health: { hold-down: 5s, agent-timeout: 3s, listen: "off" }
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: tcp, port: 80, backend-port: 8080 } ]
    vni: 100
    min-healthy: 2
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2 }
      - { dip: 10.10.1.12, host: 198.51.100.2 }
      - { dip: 10.10.2.21, host: 198.51.100.6 }
  - name: dns
    vip: 20.20.20.53
    ports: [ { protocol: udp, port-range: 53-55 } ]
    vni: 100
    backends:
      - { dip: 10.10.2.22, host: 198.51.100.6, weight: 2 }
  - name: web6
    vip: "2001:db8:f::100"
    ports: [ { protocol: tcp, port: 80 } ]
    vni: 101
    health: { type: none }
    backends:
      - { dip: "fd00:10:1::11", host: 198.51.100.2 }
`;

function config(text = CONFIG): Config {
  const r = parseConfig(text, "test.yml", {});
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

class Recorder implements RouteSink, TableSink {
  log: string[] = [];
  models: ServiceModel[] = [];
  announce(r: { prefix: string; communities: string[] }) {
    this.log.push(`+${r.prefix}${r.communities.length ? ` [${r.communities.join(" ")}]` : ""}`);
  }
  withdraw(prefix: string) {
    this.log.push(`-${prefix}`);
  }
  apply(model: ServiceModel) {
    this.models.push(model);
  }
  take() {
    return this.log.splice(0);
  }
}

function setup(cfg = config()) {
  let now = 1_000_000;
  const health = new Map<string, boolean>();
  let muxOk = true;
  const sink = new Recorder();
  const c = new Controller({
    config: cfg,
    backendUp: (k) => health.get(k),
    routes: sink,
    tables: sink,
    muxHealthy: () => muxOk,
    now: () => now,
  });
  return {
    c,
    sink,
    health,
    advance: (ms: number) => {
      now += ms;
    },
    setMux: (ok: boolean) => {
      muxOk = ok;
    },
  };
}

const states = (m: ServiceModel | undefined, name: string) =>
  m?.services.find((s) => s.name === name)?.backends.map((b) => `${b.dip}:${b.state}`);

describe("computeDesired", () => {
  it("announces a VIP iff the MUX is healthy and min-healthy backends are up", () => {
    const cfg = config();
    const up = new Set(["web/10.10.1.11", "web/10.10.2.21", "dns/10.10.2.22"]);
    const d = computeDesired({
      config: cfg,
      backendUp: (k) => up.has(k),
      admin: noAdmin(),
      muxHealthy: true,
      nowMs: 0,
    });
    expect([...d.routes.keys()].sort()).toEqual([
      "20.20.20.100/32",
      "20.20.20.53/32",
      "2001:db8:f::100/128",
    ]);
    expect(d.services.find((s) => s.name === "web")).toMatchObject({
      healthy: 2,
      total: 3,
      announced: true,
    });
    expect(states(d.model, "web")).toEqual(["10.10.1.11:up", "10.10.1.12:down", "10.10.2.21:up"]);
    // A port range becomes one listener per port.
    expect(d.model.services.find((s) => s.name === "dns")?.ports).toEqual([
      { protocol: "udp", port: 53 },
      { protocol: "udp", port: 54 },
      { protocol: "udp", port: 55 },
    ]);
    const one = computeDesired({
      config: cfg,
      backendUp: (k) => k === "web/10.10.1.11",
      admin: noAdmin(),
      muxHealthy: true,
      nowMs: 0,
    });
    expect(one.routes.has("20.20.20.100/32")).toBe(false);
    const reason = one.services.find((s) => s.name === "web")?.reason;
    expect(reason).toEqual({ kind: "below-min-healthy", healthy: 1, minHealthy: 2 });
    expect(describeVipReason(reason!)).toBe("1 healthy < min-healthy 2");
    const sick = computeDesired({
      config: cfg,
      backendUp: () => true,
      admin: noAdmin(),
      muxHealthy: false,
      nowMs: 0,
    });
    expect(sick.routes.size).toBe(0);
    // The forwarder still gets its tables: existing flows keep working on an unhealthy MUX.
    expect(states(sick.model, "web")).toEqual(["10.10.1.11:up", "10.10.1.12:up", "10.10.2.21:up"]);
  });

  it("hold-down and damping are state in, state out: the same inputs give the same answer", () => {
    const cfg = config();
    const all = () => true;
    const step = (muxHealthy: boolean, nowMs: number, state?: DecisionState) =>
      computeDesired({ config: cfg, backendUp: all, admin: noAdmin(), muxHealthy, nowMs, state });
    const sick = step(false, 0);
    expect(sick.state.mux).toEqual({ healthy: false });
    const back = step(true, 1_000, sick.state);
    expect(back.routes.size).toBe(0);
    expect(back.services[0]?.reason).toEqual({ kind: "mux-hold-down", leftMs: 5_000 });
    // Pure: asking again with the same state gives the same answer.
    expect(step(true, 1_000, sick.state)).toEqual(back);
    const later = step(true, 6_000, back.state);
    expect(later.state.mux).toEqual({ healthy: true });
    expect(later.routes.size).toBe(3);
    // Damping: a VIP that flaps (eligible → not, on health) is held back once over suppress.
    let state = later.state;
    let t = 6_000;
    let last = later;
    for (let i = 0; i < 6; i++) {
      t += 500;
      last = computeDesired({
        config: cfg,
        backendUp: () => i % 2 === 1,
        admin: noAdmin(),
        muxHealthy: true,
        nowMs: t,
        state,
      });
      state = last.state;
    }
    const web = last.services.find((s) => s.name === "web");
    expect(web?.reason.kind).toBe("suppressed");
    expect(last.routes.has("20.20.20.100/32")).toBe(false);
    expect(describeVipReason(web!.reason)).toMatch(/^suppressed by flap damping \(penalty \d+\)$/);
  });

  it("diffRoutes sends nothing when nothing changed", () => {
    const a = new Map([
      ["20.20.20.100/32", { prefix: "20.20.20.100/32", communities: [], services: ["web"] }],
    ]);
    expect(diffRoutes(a, new Map(a))).toEqual({ announce: [], withdraw: [] });
    const b = new Map([
      [
        "20.20.20.100/32",
        { prefix: "20.20.20.100/32", communities: [GRACEFUL_SHUTDOWN], services: ["web"] },
      ],
    ]);
    expect(diffRoutes(a, b).announce).toHaveLength(1);
    expect(diffRoutes(a, new Map()).withdraw).toEqual(["20.20.20.100/32"]);
  });
});

describe("Controller", () => {
  it("programs tables before announcing, and sends only differences", async () => {
    const t = setup();
    await t.c.reconcile();
    // Nothing healthy yet (web6 has health: none and is always announceable).
    expect(t.sink.take()).toEqual(["+2001:db8:f::100/128"]);
    expect(t.sink.models).toHaveLength(1);
    t.health.set("web/10.10.1.11", true);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual([]); // 1 < min-healthy 2
    t.health.set("web/10.10.2.21", true);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual(["+20.20.20.100/32"]);
    const models = t.sink.models.length;
    await t.c.reconcile();
    await t.c.reconcile();
    expect(t.sink.take()).toEqual([]);
    expect(t.sink.models).toHaveLength(models); // no change, no table push
    t.health.set("web/10.10.2.21", false);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual(["-20.20.20.100/32"]);
    expect(states(t.sink.models.at(-1), "web")).toEqual([
      "10.10.1.11:up",
      "10.10.1.12:down",
      "10.10.2.21:down",
    ]);
  });

  it("MUX unhealthy withdraws everything at once; recovery waits for the hold-down", async () => {
    const t = setup();
    for (const k of ["web/10.10.1.11", "web/10.10.2.21", "dns/10.10.2.22"]) t.health.set(k, true);
    await t.c.reconcile();
    expect(t.sink.take().sort()).toEqual([
      "+20.20.20.100/32",
      "+20.20.20.53/32",
      "+2001:db8:f::100/128",
    ]);
    t.setMux(false);
    await t.c.reconcile();
    expect(t.sink.take().sort()).toEqual([
      "-20.20.20.100/32",
      "-20.20.20.53/32",
      "-2001:db8:f::100/128",
    ]);
    t.setMux(true);
    await t.c.reconcile();
    t.advance(4_999);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual([]);
    t.advance(1);
    await t.c.reconcile();
    expect(t.sink.take()).toHaveLength(3);
    expect(t.c.status().muxHealthy).toBe(true);
  });

  it("drains the MUX: graceful-shutdown community, then withdraw after the wait; undrain restores", async () => {
    const t = setup();
    for (const k of ["web/10.10.1.11", "web/10.10.2.21", "dns/10.10.2.22"]) t.health.set(k, true);
    await t.c.reconcile();
    t.sink.take();
    t.c.drainMux();
    await t.c.reconcile();
    expect(t.sink.take().sort()).toEqual([
      `+20.20.20.100/32 [${GRACEFUL_SHUTDOWN}]`,
      `+20.20.20.53/32 [${GRACEFUL_SHUTDOWN}]`,
      `+2001:db8:f::100/128 [${GRACEFUL_SHUTDOWN}]`,
    ]);
    t.advance(10_000);
    await t.c.reconcile();
    expect(t.sink.take()).toHaveLength(3);
    expect(t.c.status().announced).toEqual([]);
    // Forwarding of existing flows continues: backends stay up in the tables.
    expect(states(t.sink.models.at(-1), "web")).toEqual([
      "10.10.1.11:up",
      "10.10.1.12:down",
      "10.10.2.21:up",
    ]);
    t.c.undrainMux();
    await t.c.reconcile();
    expect(t.sink.take().sort()).toEqual([
      "+20.20.20.100/32",
      "+20.20.20.53/32",
      "+2001:db8:f::100/128",
    ]);
  });

  it("drains one service without touching the others, and one backend to draining", async () => {
    const t = setup();
    for (const k of ["web/10.10.1.11", "web/10.10.1.12", "web/10.10.2.21", "dns/10.10.2.22"])
      t.health.set(k, true);
    await t.c.reconcile();
    t.sink.take();
    expect(t.c.drainService("dns")).toBe(true);
    expect(t.c.drainService("nope")).toBe(false);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual([`+20.20.20.53/32 [${GRACEFUL_SHUTDOWN}]`]);
    t.advance(10_000);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual(["-20.20.20.53/32"]);
    expect(t.c.drainBackend("web/10.10.1.12")).toBe(true);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual([]);
    expect(states(t.sink.models.at(-1), "web")).toEqual([
      "10.10.1.11:up",
      "10.10.1.12:draining",
      "10.10.2.21:up",
    ]);
    expect(t.c.drainBackend("web/10.9.9.9")).toBe(false);
  });

  it("a reload that removes a service withdraws exactly its VIP", async () => {
    const t = setup();
    for (const k of ["web/10.10.1.11", "web/10.10.2.21", "dns/10.10.2.22"]) t.health.set(k, true);
    await t.c.reconcile();
    t.sink.take();
    const without = config(CONFIG.replace(/ {2}- name: dns[\s\S]*?weight: 2 }\n/, ""));
    expect(without.services.map((s) => s.name)).toEqual(["web", "web6"]);
    t.c.reload(without);
    await t.c.reconcile();
    expect(t.sink.take()).toEqual(["-20.20.20.53/32"]);
  });
});

describe("Controller with an asynchronous forwarder", () => {
  it("announces only after the forwarder installed the tables, and not at all when it refuses them", async () => {
    const log: string[] = [];
    let release: () => void = () => {};
    let fail = false;
    const c = new Controller({
      config: config(),
      backendUp: () => true,
      routes: { announce: (r) => log.push(`+${r.prefix}`), withdraw: (p) => log.push(`-${p}`) },
      tables: {
        apply: () =>
          fail
            ? Promise.reject(new Error("refused"))
            : new Promise<void>((r) => {
                release = () => {
                  log.push("tables");
                  r();
                };
              }),
      },
    });
    const failures: string[] = [];
    c.on("tablesFailed", (e) => failures.push(e.message));
    const done = c.reconcile();
    await new Promise((r) => setTimeout(r, 20));
    expect(log).toEqual([]); // still installing
    release();
    await done;
    expect(log[0]).toBe("tables");
    expect(log.slice(1).sort()).toEqual([
      "+20.20.20.100/32",
      "+20.20.20.53/32",
      "+2001:db8:f::100/128",
    ]);
    fail = true;
    c.drainBackend("web/10.10.1.11");
    await c.reconcile();
    // drainBackend pokes a reconcile too: each attempt fails and changes no route.
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(new Set(failures)).toEqual(new Set(["refused"]));
    expect(log).toHaveLength(4);
  });
});

describe("Controller with a stalled forwarder", () => {
  it("still withdraws when the forwarder never takes its tables (the control plane survives)", async () => {
    const log: string[] = [];
    let stalled = false;
    let healthy = true;
    const c = new Controller({
      config: config(),
      backendUp: () => true,
      muxHealthy: () => healthy,
      tableTimeoutMs: 50,
      routes: { announce: (r) => log.push(`+${r.prefix}`), withdraw: (p) => log.push(`-${p}`) },
      // A stalled worker: the install never completes.
      tables: { apply: () => (stalled ? new Promise(() => {}) : undefined) },
    });
    const failures: string[] = [];
    c.on("tablesFailed", (e) => failures.push(e.message));
    await c.reconcile();
    expect(log).toHaveLength(3);
    stalled = true;
    c.drainBackend("web/10.10.1.11"); // a table change the stalled forwarder never takes
    healthy = false; // ...and its heartbeat stops
    await c.reconcile();
    expect(failures[0]).toMatch(/did not install its tables within 50 ms/);
    expect(log.slice(3).sort()).toEqual([
      "-20.20.20.100/32",
      "-20.20.20.53/32",
      "-2001:db8:f::100/128",
    ]);
  });
});

describe("HealthHub", () => {
  it("merges agent reports and turns a silent agent's DIPs down after agent-timeout", () => {
    let now = 0;
    const hub = new HealthHub({ now: () => now });
    hub.sync(config());
    const changes: string[] = [];
    hub.on("change", (k, up) => changes.push(`${k}:${up}`));
    expect(hub.backendUp("web/10.10.1.11")).toBeUndefined();
    hub.report(
      "198.51.100.2",
      [
        ["web/10.10.1.11", true],
        ["web/10.10.1.12", false],
      ],
      true,
    );
    expect(hub.backendUp("web/10.10.1.11")).toBe(true);
    expect(hub.backendUp("web/10.10.1.12")).toBe(false);
    now = 2_000;
    hub.report("198.51.100.2", [], false); // heartbeat
    now = 4_900;
    hub.checkSilence();
    expect(hub.backendUp("web/10.10.1.11")).toBe(true);
    now = 5_001;
    hub.checkSilence();
    expect(hub.backendUp("web/10.10.1.11")).toBe(false);
    // A DIP first reported down was never up: no change for it (unknown counts as down).
    expect(changes).toEqual(["web/10.10.1.11:true", "web/10.10.1.11:false"]);
    expect(hub.ownsKey("198.51.100.2", "web/10.10.1.11")).toBe(true);
    expect(hub.ownsKey("198.51.100.6", "web/10.10.1.11")).toBe(false);
    hub.stop();
  });
});
