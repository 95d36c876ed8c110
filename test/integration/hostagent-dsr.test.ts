// The host agent in the canonical lab, with this test standing in for the MUX (the MUX
// dataplane is built separately):
//
//   client ── edge ── mux1 (stand-in MUX) ══VXLAN══► host1 (vipmux host-agent) ─br0─ vm11, vm12
//      ▲        ▲                                       │
//      └────────┴──────── DSR: replies from the VIP ────┘
//
// - hand-built packets: mux1 encapsulates inner UDP / TCP SYN packets with the project's
//   codec (src/packet) and sends them to host1's PA; the client (whose address is the
//   inner source) receives the backend's answer from the VIP, and captures show the reply
//   leaving host1 towards the edge and never crossing mux1. With the inner destination
//   MAC dipMac(DIP) (the MUX's choice) the flow reaches exactly that DIP; with the VXLAN
//   device's own MAC (no choice: an older MUX) host1 picks by its jhash;
// - real connections: mux1's kernel VXLAN devices play an older MUX (device MAC) for
//   client TCP connections (edge routes the VIP to mux1, mux1 encapsulates to host1), so
//   a long-lived flow can be watched across agent restarts and service changes.
import type { ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { dipMacText } from "../../src/lb/dip-mac.ts";
import { formatIp, parseIp } from "../../src/packet/address.ts";
import { canonicalTopology, isRoot, repoRoot } from "./helpers.ts";

const NODE = process.execPath;
const FIX = `${repoRoot}test/fixtures/hostagent-lab`;
const HOST1_PA = "198.51.100.2";
const INNER_MAC = "02:76:6d:78:00:01";
const VIP = "20.20.20.100";
const VIP6 = "2001:db8:f::100";
const CLIENT = "203.0.113.10";
const CLIENT6 = "2001:db8:c::10";

/**
 * The lab's host1 config, reconciling every second (drift repair is tested), without the
 * lab's health block (the health test wires its own listener) and with only the web and
 * web6 services the assertions below count.
 */
const host1Config = () => {
  const lab = readFileSync(`${repoRoot}containerlab/host1.yml`, "utf8");
  const noHealth = lab.replace(
    /\n# Probes of this host's DIPs[^\n]*\nhealth:\n(?: {2}.*\n)+/,
    "\n",
  );
  const onlyWeb = noHealth.replace(/ {2}- name: sticky[\s\S]*?(?= {2}- name: web6)/, "");
  expect(onlyWeb).not.toMatch(/^health:/m);
  expect(onlyWeb).not.toContain("name: sticky");
  return onlyWeb.replace("\nservices:\n", "\nreconcile: { interval: 1s }\n\nservices:\n");
};

interface Listen {
  received: { from: string; data: string }[];
}

describe.skipIf(!isRoot)("host agent: VXLAN → DNAT → DSR in the canonical lab", () => {
  let lab: TestLab;
  let agent: ChildProcess | undefined;
  let agentRuns = 0;
  const backends = new Map<string, ChildProcess>();
  let config = "";

  const logOf = (name: string) => {
    const f = join(lab.plan.dir, `${name}.log`);
    return existsSync(f) ? readFileSync(f, "utf8") : "";
  };
  const jsonLines = <T>(name: string): T[] =>
    logOf(name)
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as T);

  async function startAgent(...flags: string[]): Promise<string> {
    const name = `agent-${++agentRuns}`;
    agent = lab.spawn("host1", ["vipmux", "host-agent", "--config", config, ...flags], name);
    return pollUntil(
      async () => {
        const m = /reconciled \(start\): .*/.exec(logOf(name));
        return m?.[0];
      },
      { timeoutMs: 20_000, what: `${name} to reconcile` },
    );
  }

  async function stopAgent(): Promise<void> {
    const a = agent;
    if (!a || a.exitCode !== null) return;
    const exited = new Promise((r) => a.once("exit", r));
    a.kill("SIGTERM");
    await exited;
  }

  /**
   * Sends hand-built VXLAN packets from mux1 to host1's PA; inner Ethernet destination
   * `innerMac`: a DIP's dipMac (the MUX chose that DIP) or the device's own (no choice).
   */
  async function muxSend(vni: number, packets: object[], innerMac = INNER_MAC): Promise<void> {
    const spec = { host: HOST1_PA, vni, innerMac, packets };
    await lab.must("mux1", [NODE, `${FIX}/mux-send.ts`, JSON.stringify(spec)]);
  }

  /** Starts a capture in a node; resolves once tcpdump is listening. */
  async function capture(node: string, iface: string, filter: string, name: string) {
    lab.spawn(node, ["timeout", "15", "tcpdump", "-i", iface, "-n", "-l", "-c", "1", filter], name);
    await pollUntil(async () => logOf(name).includes("listening on"), {
      timeoutMs: 10_000,
      what: `tcpdump ${name}`,
    });
  }

  async function udpListen(addr: string, port: number, name: string, timeoutMs = 8000, count = 1) {
    lab.spawn(
      "client",
      [
        NODE,
        `${FIX}/client.ts`,
        "udp-listen",
        addr,
        String(port),
        String(count),
        String(timeoutMs),
      ],
      name,
    );
    await pollUntil(async () => logOf(name).includes("listening"), {
      timeoutMs: 10_000,
      what: `client listener ${name}`,
    });
  }

  const received = (name: string) =>
    pollUntil(async () => jsonLines<Listen>(name).find((l) => l.received)?.received, {
      timeoutMs: 12_000,
      what: `result of ${name}`,
    });

  const tableHandle = async (name: string) => {
    const out = await lab.exec("host1", ["nft", "-a", "list", "table", "inet", name]);
    return out.code === 0 ? /# handle (\d+)/.exec(out.stdout)?.[1] : undefined;
  };
  const links = async () =>
    (
      JSON.parse(await lab.must("host1", ["ip", "-j", "-d", "link", "show"])) as {
        ifname: string;
        ifindex: number;
        address: string;
        linkinfo?: { info_kind: string; info_data?: { id: number; local?: string; port: number } };
      }[]
    ).filter((l) => l.ifname.startsWith("vmx-"));
  const conntrack = async () =>
    (await lab.must("host1", ["cat", "/proc/net/nf_conntrack"])).split("\n").filter(Boolean);

  beforeAll(async () => {
    lab = await startLab(canonicalTopology, "ha", { skipCmd: true });
    config = join(lab.plan.dir, "host1.yml");
    writeFileSync(config, host1Config());
    // The config names the health token relative to itself.
    copyFileSync(`${repoRoot}containerlab/health-token`, join(lab.plan.dir, "health-token"));
    for (const vm of ["vm11", "vm12"])
      backends.set(
        vm,
        lab.spawn(vm, [NODE, `${FIX}/backend.ts`, vm, "tcp:8080", "udp:7007"], `backend-${vm}`),
      );
    await pollUntil(
      async () =>
        logOf("backend-vm11").includes("listening") && logOf("backend-vm12").includes("listening"),
      { timeoutMs: 15_000, what: "backends" },
    );
  });

  afterAll(async () => {
    await lab?.down();
  });

  it("programs one VXLAN device per VNI, per-service nftables tables and rp_filter off", async () => {
    const line = await startAgent();
    expect(line).toMatch(/2 services, 2 VXLAN devices, [1-9]\d* changes/);
    const l = await links();
    expect(
      l.map((x) => [
        x.ifname,
        x.address,
        x.linkinfo?.info_kind,
        x.linkinfo?.info_data?.id,
        x.linkinfo?.info_data?.local,
        x.linkinfo?.info_data?.port,
      ]),
    ).toEqual([
      ["vmx-100", INNER_MAC, "vxlan", 100, HOST1_PA, 4789],
      ["vmx-101", INNER_MAC, "vxlan", 101, HOST1_PA, 4789],
    ]);
    expect(
      (await lab.must("host1", ["cat", "/proc/sys/net/ipv4/conf/vmx-100/rp_filter"])).trim(),
    ).toBe("0");
    const nft = await lab.must("host1", ["nft", "list", "tables"]);
    expect(
      nft
        .split("\n")
        .filter((t) => t.includes("vipmux"))
        .sort(),
    ).toEqual([
      "table inet vipmux-host",
      "table inet vipmux-svc-web",
      "table inet vipmux-svc-web6",
      "table netdev vipmux-vni-100",
      "table netdev vipmux-vni-101",
    ]);
  });

  it("IPv4 UDP: a VXLAN datagram to VIP:7 is DNATed to a DIP:7007; the answer comes from the VIP, straight from host1", async () => {
    await udpListen(CLIENT, 40007, "udp4-client");
    await capture("host1", "eth1", `udp and src host ${VIP} and src port 7`, "udp4-host1");
    await capture("mux1", "eth1", `src host ${VIP}`, "udp4-mux1");
    await muxSend(100, [
      { src: CLIENT, dst: VIP, proto: "udp", sport: 40007, dport: 7, payload: "hello4" },
    ]);
    const got = await received("udp4-client");
    expect(got).toHaveLength(1);
    expect(got[0]!.from).toBe(`${VIP}:7`);
    // The backend saw its own DIP and port (DNAT) and the client's address (no SNAT).
    expect(got[0]!.data).toMatch(
      /^vm1[12] local=0\.0\.0\.0:7007 remote=203\.0\.113\.10:40007 hello4$/,
    );
    await pollUntil(async () => logOf("udp4-host1").includes(`${VIP}.7 > ${CLIENT}.40007: UDP`), {
      timeoutMs: 5_000,
      what: "the reply on host1's uplink",
    });
    // DSR: nothing from the VIP ever crosses the MUX.
    expect(logOf("udp4-mux1")).not.toContain(`${VIP}.`);
  });

  it("IPv4 TCP: a VXLAN SYN reaches a DIP:8080; its SYN-ACK leaves host1 from VIP:80, conntrack holds the NAT", async () => {
    await capture("host1", "eth1", `tcp and src host ${VIP} and src port 80`, "syn4-host1");
    await muxSend(100, [
      { src: CLIENT, dst: VIP, proto: "tcp", sport: 40080, dport: 80, flags: 0x02 },
    ]);
    await pollUntil(
      async () =>
        /20\.20\.20\.100\.80 > 203\.0\.113\.10\.40080: Flags \[S\.\]/.test(logOf("syn4-host1")),
      {
        timeoutMs: 8_000,
        what: "SYN-ACK from the VIP on host1's uplink",
      },
    );
    const ct = (await conntrack()).filter((l) => l.includes("dport=40080"));
    expect(ct.length).toBe(1);
    expect(ct[0]).toMatch(
      /src=203\.0\.113\.10 dst=20\.20\.20\.100 sport=40080 dport=80 .*src=10\.10\.1\.1[12] dst=203\.0\.113\.10 sport=8080 dport=40080/,
    );
  });

  it("IPv6 over an IPv4 underlay: VNI 101, DNAT to [DIP]:7007, answer from the IPv6 VIP", async () => {
    await udpListen(CLIENT6, 40007, "udp6-client");
    await muxSend(101, [
      { src: CLIENT6, dst: VIP6, proto: "udp", sport: 40007, dport: 7, payload: "hello6" },
    ]);
    const got = await received("udp6-client");
    expect(got[0]?.from).toBe(`${VIP6}:7`);
    expect(got[0]?.data).toMatch(/^vm1[12] local=:::7007 remote=2001:db8:c::10:40007 hello6$/);
  });

  it("the MUX's choice holds: inner MAC dipMac(vm12) reaches vm12 every time, dipMac(vm11) vm11 (UDP and TCP, IPv4 and IPv6)", async () => {
    // Per flow (VIP, client port), the conntrack entry's reply source: the DIP it was
    // DNATed to. (/proc/net/nf_conntrack writes IPv6 addresses in full.)
    const norm = (a: string) => formatIp(parseIp(a)!);
    const replySource = async () => {
      const m = new Map<string, string>();
      for (const l of await conntrack()) {
        const r = /src=\S+ dst=(\S+) sport=(\d+) dport=\d+ .*?src=(\S+) dst=/.exec(l);
        if (r) m.set(`${norm(r[1]!)}|${r[2]}`, norm(r[3]!));
      }
      return m;
    };
    // The backend answers too (DSR from the VIP), for the first datagram of each family.
    await udpListen(CLIENT, 41000, "choice4-client");
    await udpListen(CLIENT6, 41100, "choice6-client");
    const cases = [
      {
        vni: 100,
        vip: VIP,
        src: CLIENT,
        base: 41000,
        dip: { vm11: "10.10.1.11", vm12: "10.10.1.12" },
      },
      {
        vni: 101,
        vip: VIP6,
        src: CLIENT6,
        base: 41100,
        dip: { vm11: "fd00:10:1::11", vm12: "fd00:10:1::12" },
      },
    ];
    for (const c of cases) {
      let port = c.base;
      for (const proto of ["udp", "tcp"] as const)
        for (const vm of ["vm12", "vm11"] as const) {
          // 8 flows each: if the host ignored the MAC, its jhash would send about half of
          // them to the other VM (all 32 per family right by chance: 2^-32).
          const ports = Array.from({ length: 8 }, () => port++);
          await muxSend(
            c.vni,
            ports.map((sport) => ({
              src: c.src,
              dst: c.vip,
              proto,
              sport,
              dport: proto === "udp" ? 7 : 80,
              ...(proto === "tcp" ? { flags: 0x02 } : { payload: `choice-${vm}` }),
            })),
            dipMacText(c.dip[vm]),
          );
          const got = await pollUntil(
            async () => {
              const m = await replySource();
              const keys = ports.map((p) => `${c.vip}|${p}`);
              return keys.every((k) => m.has(k)) ? keys.map((k) => m.get(k)) : undefined;
            },
            { timeoutMs: 8_000, what: `conntrack of ${proto} flows sent to ${vm}'s MAC` },
          );
          expect(got, `${c.vip} ${proto} → ${vm}`).toEqual(ports.map(() => c.dip[vm]));
        }
    }
    expect((await received("choice4-client"))[0]?.data).toMatch(
      /^vm12 local=0\.0\.0\.0:7007 remote=203\.0\.113\.10:41000 choice-vm12$/,
    );
    expect((await received("choice6-client"))[0]?.data).toMatch(
      /^vm12 local=:::7007 remote=2001:db8:c::10:41100 choice-vm12$/,
    );
    // The netdev chain counted them per DIP.
    const vni100 = await lab.must("host1", ["nft", "list", "table", "netdev", "vipmux-vni-100"]);
    expect(vni100).toMatch(
      /ether daddr 02:76:0a:0a:01:0c counter packets ([1-9]\d*) bytes \d+ meta mark set .* comment "dip 10\.10\.1\.12"/,
    );
  });

  it("a VIP arriving on another service's VNI matches nothing", async () => {
    await udpListen(CLIENT, 40008, "wrong-vni-client", 2500);
    await muxSend(101, [
      { src: CLIENT, dst: VIP, proto: "udp", sport: 40008, dport: 7, payload: "x" },
    ]);
    expect(await received("wrong-vni-client")).toEqual([]);
    // The forward guard dropped it (instead of routing it back towards the edge).
    const host = await lab.must("host1", ["nft", "list", "table", "inet", "vipmux-host"]);
    expect(host).toMatch(/counter packets [1-9]\d* bytes \d+ drop comment "no service"/);
  });

  describe("real TCP connections through a stand-in MUX (mux1's kernel VXLAN)", () => {
    beforeAll(async () => {
      // mux1 forwards the VIPs into VXLAN towards host1 like an older MUX (inner
      // destination MAC = the host's VXLAN MAC: host1 picks the DIP); the edge routes the
      // VIPs to mux1.
      const m = (argv: string[]) => lab.must("mux1", argv);
      await m(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
      for (const [dev, vni] of [
        ["mx100", "100"],
        ["mx101", "101"],
      ] as const) {
        await m([
          "ip",
          "link",
          "add",
          dev,
          "type",
          "vxlan",
          "id",
          vni,
          "local",
          "192.0.2.2",
          "dstport",
          "4789",
          "nolearning",
        ]);
        await m(["ip", "link", "set", dev, "address", "02:76:6d:78:00:aa", "up"]);
        await m(["bridge", "fdb", "append", INNER_MAC, "dev", dev, "dst", HOST1_PA]);
      }
      await m([
        "ip",
        "neigh",
        "add",
        "169.254.100.1",
        "lladdr",
        INNER_MAC,
        "dev",
        "mx100",
        "nud",
        "permanent",
      ]);
      await m([
        "ip",
        "route",
        "add",
        `${VIP}/32`,
        "via",
        "169.254.100.1",
        "dev",
        "mx100",
        "onlink",
      ]);
      await m([
        "ip",
        "-6",
        "neigh",
        "add",
        "fe80::1",
        "lladdr",
        INNER_MAC,
        "dev",
        "mx101",
        "nud",
        "permanent",
      ]);
      await m(["ip", "-6", "route", "add", `${VIP6}/128`, "via", "fe80::1", "dev", "mx101"]);
      await lab.must("edge", ["ip", "route", "add", `${VIP}/32`, "via", "192.0.2.2"]);
      await lab.must("edge", ["ip", "-6", "route", "add", `${VIP6}/128`, "via", "2001:db8:0:1::2"]);
      // From here on host1's main table has no default route: DSR replies reach the edge
      // only through the agent's gateway routing (host.gateway / gateway-v6).
      await lab.must("host1", ["ip", "route", "del", "default"]);
      await lab.must("host1", ["ip", "-6", "route", "del", "default"]);
    });

    const http = async (addr: string) => {
      const out = await lab.must("client", [NODE, `${FIX}/client.ts`, "http", addr, "80"]);
      return JSON.parse(out.trim().split("\n").pop()!) as {
        body?: string;
        peer?: string;
        error?: string;
      };
    };

    it("HTTP to the IPv4 and IPv6 VIPs: the DIP answers on :8080, the client talks to the VIP", async () => {
      expect(await lab.must("host1", ["ip", "route", "show", "default"])).toBe("");
      expect(await lab.must("host1", ["ip", "route", "show", "table", "4789"])).toContain(
        "default via 198.51.100.1 dev eth1 proto 247",
      );
      const r4 = await http(VIP);
      expect(r4.peer).toBe(`${VIP}:80`);
      expect(r4.body).toMatch(/^vm1[12] local=10\.10\.1\.1[12]:8080 remote=203\.0\.113\.10:\d+\n$/);
      const r6 = await http(VIP6);
      expect(r6.peer).toBe(`${VIP6}:80`);
      expect(r6.body).toMatch(/^vm1[12] local=fd00:10:1::1[12]:8080 remote=2001:db8:c::10:\d+\n$/);
    });

    it("many connections spread over both local DIPs (jhash over the 5-tuple)", async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 12 && seen.size < 2; i++)
        seen.add((await http(VIP)).body?.split(" ")[0] ?? "");
      expect([...seen].sort()).toEqual(["vm11", "vm12"]);
    });

    it("idempotent: restart, a second run, a changed and a removed service leave other flows alone", async () => {
      const stop4 = join(lab.plan.dir, "stop4");
      const stop6 = join(lab.plan.dir, "stop6");
      lab.spawn("client", [NODE, `${FIX}/client.ts`, "stream", VIP, "80", stop4], "stream4");
      lab.spawn("client", [NODE, `${FIX}/client.ts`, "stream", VIP6, "80", stop6], "stream6");
      await pollUntil(
        async () =>
          logOf("stream4").includes("connected") && logOf("stream6").includes("connected"),
        {
          timeoutMs: 10_000,
          what: "long-lived streams",
        },
      );
      const webHandle = await tableHandle("vipmux-svc-web");
      const web6Handle = await tableHandle("vipmux-svc-web6");
      const ifindexes = (await links()).map((l) => `${l.ifname}:${l.ifindex}`);
      const webFlows = async () =>
        (await conntrack()).filter((l) => l.includes(`dst=${VIP} `) && l.includes("ESTABLISHED"));
      const before = await webFlows();
      expect(before.length).toBeGreaterThanOrEqual(1);

      // 1. SIGTERM leaves everything in place; a restarted agent changes nothing.
      await stopAgent();
      expect(logOf(`agent-${agentRuns}`)).toContain("leaving the kernel state in place");
      expect(await tableHandle("vipmux-svc-web")).toBe(webHandle);
      expect(await startAgent()).toMatch(/ 0 changes /);
      // 2. A second agent run (--once) also finds nothing to do.
      const once = await lab.must("host1", ["vipmux", "host-agent", "--config", config, "--once"]);
      expect(once).toMatch(/reconciled: 0 changes/);
      expect(await tableHandle("vipmux-svc-web")).toBe(webHandle);
      expect(await tableHandle("vipmux-svc-web6")).toBe(web6Handle);
      expect((await links()).map((l) => `${l.ifname}:${l.ifindex}`)).toEqual(ifindexes);

      // 3. Change web6 (a port added) and reload: only web6's table is replaced.
      const text = readFileSync(config, "utf8");
      const changed = text.replace(
        "  - name: web6\n    vip: 2001:db8:f::100\n    ports:\n",
        "  - name: web6\n    vip: 2001:db8:f::100\n    ports:\n      - { protocol: tcp, port: 81, backend-port: 8080 }\n",
      );
      expect(changed).not.toBe(text);
      writeFileSync(config, changed);
      agent!.kill("SIGHUP");
      await pollUntil(
        async () => /reconciled \(reload\): .* 1 changes/.test(logOf(`agent-${agentRuns}`)),
        {
          timeoutMs: 10_000,
          what: "reload after changing web6",
        },
      );
      expect(await tableHandle("vipmux-svc-web")).toBe(webHandle);
      expect(await tableHandle("vipmux-svc-web6")).not.toBe(web6Handle);
      expect((await http(VIP6)).body).toMatch(/^vm1[12] /);

      // 4. Remove web6: its table, its device and its conntrack entries go; web keeps all.
      // /proc/net/nf_conntrack writes IPv6 addresses in full.
      const v6flows = async () =>
        (await conntrack()).filter((l) =>
          l.includes("dst=2001:0db8:000f:0000:0000:0000:0000:0100 "),
        );
      expect((await v6flows()).length).toBeGreaterThanOrEqual(1);
      writeFileSync(stop6, "");
      await pollUntil(
        async () => jsonLines<{ sent?: number }>("stream6").find((l) => l.sent !== undefined),
        {
          timeoutMs: 10_000,
          what: "the IPv6 stream to finish",
        },
      );
      writeFileSync(config, text.slice(0, text.indexOf("  - name: web6")));
      agent!.kill("SIGHUP");
      await pollUntil(
        async () =>
          /reconciled \(reload\): 1 services, 1 VXLAN devices/.test(logOf(`agent-${agentRuns}`)),
        {
          timeoutMs: 10_000,
          what: "reload after removing web6",
        },
      );
      expect(await tableHandle("vipmux-svc-web6")).toBeUndefined();
      expect(await tableHandle("vipmux-svc-web")).toBe(webHandle);
      expect((await links()).map((l) => l.ifname)).toEqual(["vmx-100"]);
      expect(await v6flows()).toEqual([]);
      expect(logOf(`agent-${agentRuns}`)).toMatch(/deleted [1-9]\d* conntrack entries/);
      // web's conntrack entries are the same ones (same tuples), untouched.
      const after = await webFlows();
      const tuple = (l: string) => /src=\S+ dst=\S+ sport=\d+ dport=\d+/.exec(l)?.[0];
      expect(after.map(tuple)).toEqual(expect.arrayContaining(before.map(tuple)));

      // The IPv4 stream lived through all of it without a lost or reordered line.
      writeFileSync(stop4, "");
      const r4 = await pollUntil(
        async () =>
          jsonLines<{ sent?: number; received: number; errors: string[] }>("stream4").find(
            (l) => l.sent !== undefined,
          ),
        { timeoutMs: 10_000, what: "the IPv4 stream to finish" },
      );
      expect(r4.errors).toEqual([]);
      expect(r4.sent).toBeGreaterThan(20);
      expect(r4.received).toBe(r4.sent);
      const r6 = jsonLines<{ sent?: number; received: number; errors: string[] }>("stream6").find(
        (l) => l.sent !== undefined,
      )!;
      expect(r6.errors).toEqual([]);
      expect(r6.received).toBe(r6.sent);
    });
  });

  it("floating IP: no NAT; the VIP is routed to the DIP, which owns it and answers from it", async () => {
    const text = host1Config();
    writeFileSync(
      config,
      `${text}
  - name: dns
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 100
    health: { type: udp, port: 53, send: ping }
    backends:
      - { dip: 10.10.1.12, host: 198.51.100.2, floating-ip: true }
      - { dip: 10.10.2.22, host: 198.51.100.6, floating-ip: true }
`,
    );
    agent!.kill("SIGHUP");
    await pollUntil(
      async () => /reconciled \(reload\): 3 services/.test(logOf(`agent-${agentRuns}`)),
      {
        timeoutMs: 10_000,
        what: "reload with the floating-IP service",
      },
    );
    // The backend's own business: the VIP on its loopback, a server bound to it.
    await lab.must("vm12", ["ip", "addr", "add", "20.20.20.101/32", "dev", "lo"]);
    lab.spawn("vm12", [NODE, `${FIX}/backend.ts`, "vm12f", "udp:53@20.20.20.101"], "backend-vm12f");
    await pollUntil(async () => logOf("backend-vm12f").includes("listening"), {
      timeoutMs: 10_000,
      what: "floating backend",
    });
    expect(await lab.must("host1", ["ip", "rule", "show"])).toMatch(
      /4790:\s+from all to 20\.20\.20\.101 iif vmx-100 lookup 4789 proto 247/,
    );
    expect(await lab.must("host1", ["ip", "route", "show", "table", "4789"])).toMatch(
      /^20\.20\.20\.101 via 10\.10\.1\.12 dev br0 proto 247/m,
    );
    await udpListen(CLIENT, 40053, "float-client");
    await muxSend(100, [
      { src: CLIENT, dst: "20.20.20.101", proto: "udp", sport: 40053, dport: 53, payload: "q" },
    ]);
    const got = await received("float-client");
    expect(got).toEqual([
      { from: "20.20.20.101:53", data: "vm12f local=20.20.20.101:53 remote=203.0.113.10:40053 q" },
    ]);
  });

  it("floating IP with two local DIPs: the same flow goes to whichever DIP the inner MAC names", async () => {
    writeFileSync(
      config,
      `${host1Config()}
  - name: dns
    vip: 20.20.20.101
    ports: [ { protocol: udp, port: 53 } ]
    vni: 100
    health: { type: udp, port: 53, send: ping }
    backends:
      - { dip: 10.10.1.11, host: 198.51.100.2, floating-ip: true }
      - { dip: 10.10.1.12, host: 198.51.100.2, floating-ip: true }
`,
    );
    agent!.kill("SIGHUP");
    await pollUntil(
      async () => (await lab.must("host1", ["ip", "rule", "show"])).includes("lookup 17432843"),
      { timeoutMs: 10_000, what: "the floating DIPs' marked rules" },
    );
    const rules = await lab.must("host1", ["ip", "rule", "show"]);
    expect(rules).toMatch(
      /4789:\s+from all to 20\.20\.20\.101 fwmark 0x10a010b\/0x1ffffff iif vmx-100 lookup 17432843 proto 247/,
    );
    expect(rules).toMatch(
      /4789:\s+from all to 20\.20\.20\.101 fwmark 0x10a010c\/0x1ffffff iif vmx-100 lookup 17432844 proto 247/,
    );
    expect(await lab.must("host1", ["ip", "route", "show", "table", "17432843"])).toMatch(
      /^20\.20\.20\.101 via 10\.10\.1\.11 dev br0 proto 247/m,
    );
    // Idempotent with the DIP tables and masked fwmark rules read back from the kernel.
    expect(await lab.must("host1", ["vipmux", "host-agent", "--config", config, "--once"])).toMatch(
      /reconciled: 0 changes/,
    );
    await lab.must("vm11", ["ip", "addr", "add", "20.20.20.101/32", "dev", "lo"]);
    lab.spawn("vm11", [NODE, `${FIX}/backend.ts`, "vm11f", "udp:53@20.20.20.101"], "backend-vm11f");
    await pollUntil(async () => logOf("backend-vm11f").includes("listening"), {
      timeoutMs: 10_000,
      what: "floating backend on vm11",
    });
    // One 5-tuple, four datagrams: the MAC alone decides (no NAT, no conntrack binding).
    const order = ["vm11", "vm12", "vm11", "vm12"] as const;
    await udpListen(CLIENT, 40054, "float2-client", 10_000, order.length);
    for (const [i, vm] of order.entries())
      await muxSend(
        100,
        [
          {
            src: CLIENT,
            dst: "20.20.20.101",
            proto: "udp",
            sport: 40054,
            dport: 53,
            payload: `q${i}`,
          },
        ],
        dipMacText(vm === "vm11" ? "10.10.1.11" : "10.10.1.12"),
      );
    const got = await received("float2-client");
    expect(got.map((g) => g.data).sort()).toEqual(
      order.map((vm, i) => `${vm}f local=20.20.20.101:53 remote=203.0.113.10:40054 q${i}`).sort(),
    );
    expect(got.every((g) => g.from === "20.20.20.101:53")).toBe(true);
    await lab.must("vm11", ["ip", "addr", "del", "20.20.20.101/32", "dev", "lo"]);
  });

  it("health: probes report to the MUX; a failing local DIP gets no new flows until it is back", async () => {
    // host1 has no main default route any more (DSR test): give it its underlay route to
    // the MUXes' network, as a real host has.
    await lab.must("host1", ["ip", "route", "add", "192.0.2.0/29", "via", "198.51.100.1"]);
    lab.spawn(
      "mux1",
      [NODE, `${FIX}/health-listener.ts`, "192.0.2.2", "7946", "lab-token-0123456789abcdef"],
      "health-mux1",
    );
    await pollUntil(async () => logOf("health-mux1").includes("listening"), {
      timeoutMs: 10_000,
      what: "health listener in mux1",
    });
    writeFileSync(
      config,
      `${host1Config()}
health:
  token: lab-token-0123456789abcdef
  muxes: [ { address: 192.0.2.2, port: 7946 } ]
`,
    );
    agent!.kill("SIGHUP");
    type Report = { host?: string; backends?: [string, boolean][]; full?: boolean };
    const state = () => {
      const m = new Map<string, boolean>();
      for (const r of jsonLines<Report>("health-mux1"))
        if (r.host === HOST1_PA) for (const [k, up] of r.backends ?? []) m.set(k, up);
      return m;
    };
    await pollUntil(async () => state().get("web/10.10.1.11") && state().get("web/10.10.1.12"), {
      timeoutMs: 15_000,
      what: "host1's DIPs reported up to the MUX",
    });
    expect([...state().keys()].sort()).toEqual([
      "web/10.10.1.11",
      "web/10.10.1.12",
      "web6/fd00:10:1::11",
      "web6/fd00:10:1::12",
    ]);
    const handle = await tableHandle("vipmux-svc-web");

    // vm12's server dies: the MUX hears it, and host1 stops picking vm12 for new flows.
    const vm12 = backends.get("vm12")!;
    const exited = new Promise((r) => vm12.once("exit", r));
    vm12.kill("SIGTERM");
    await exited;
    await pollUntil(async () => state().get("web/10.10.1.12") === false, {
      timeoutMs: 15_000,
      what: "web/10.10.1.12 reported down",
    });
    await pollUntil(
      async () =>
        !(await lab.must("host1", ["nft", "list", "table", "inet", "vipmux-svc-web"])).includes(
          "10.10.1.12",
        ),
      {
        timeoutMs: 10_000,
        what: "vm12 out of host1's web table",
      },
    );
    expect(await tableHandle("vipmux-svc-web")).not.toBe(handle);
    for (let i = 0; i < 6; i++) {
      const r = await lab.must("client", [NODE, `${FIX}/client.ts`, "http", VIP, "80"]);
      expect(r).toMatch(/"body":"vm11 /);
    }

    // A MUX that still names vm12 (until the health stream reaches it): host1 falls back
    // to its healthy DIP instead of sending the flow to the dead one.
    await muxSend(
      100,
      [{ src: CLIENT, dst: VIP, proto: "udp", sport: 41300, dport: 7, payload: "fallback" }],
      dipMacText("10.10.1.12"),
    );
    const fallback = await pollUntil(
      async () => (await conntrack()).find((l) => /dst=20\.20\.20\.100 sport=41300 /.test(l)),
      { timeoutMs: 5_000, what: "conntrack of the flow sent to vm12's MAC" },
    );
    expect(fallback).toMatch(
      /sport=41300 dport=7 .*src=10\.10\.1\.11 dst=203\.0\.113\.10 sport=7007/,
    );

    // Back: reported up, and in the table again.
    backends.set(
      "vm12",
      lab.spawn(
        "vm12",
        [NODE, `${FIX}/backend.ts`, "vm12", "tcp:8080", "udp:7007"],
        "backend-vm12-again",
      ),
    );
    await pollUntil(async () => state().get("web/10.10.1.12") === true, {
      timeoutMs: 15_000,
      what: "web/10.10.1.12 reported up again",
    });
    await pollUntil(
      async () =>
        (await lab.must("host1", ["nft", "list", "table", "inet", "vipmux-svc-web"])).includes(
          "10.10.1.12",
        ),
      {
        timeoutMs: 10_000,
        what: "vm12 back in host1's web table",
      },
    );
    expect(logOf(`agent-${agentRuns}`)).toMatch(/health: web\/10\.10\.1\.12 down/);
  });

  it("drift is repaired: a deleted table and a downed device come back", async () => {
    const handle = await tableHandle("vipmux-svc-web");
    await lab.must("host1", ["nft", "delete", "table", "inet", "vipmux-svc-web"]);
    await lab.must("host1", ["ip", "link", "set", "vmx-100", "down"]);
    await pollUntil(async () => (await tableHandle("vipmux-svc-web")) !== undefined, {
      timeoutMs: 10_000,
      what: "the web table to come back",
    });
    expect(await tableHandle("vipmux-svc-web")).not.toBe(handle);
    await pollUntil(
      async () =>
        (await lab.must("host1", ["ip", "-o", "link", "show", "vmx-100"])).includes(",UP,"),
      { timeoutMs: 10_000, what: "vmx-100 up again" },
    );
    expect(logOf(`agent-${agentRuns}`)).toMatch(/reconciled \(timer\): .* [1-9]\d* changes/);
    const r = await lab.must("client", [NODE, `${FIX}/client.ts`, "http", VIP, "80"]);
    expect(r).toMatch(/vm1[12] local=10\.10\.1\.1[12]:8080/);
  });

  it("--cleanup removes everything on SIGTERM; cleanup then finds nothing left", async () => {
    await stopAgent();
    expect(await links()).not.toEqual([]);
    expect(await startAgent("--cleanup")).toMatch(/ 0 changes /);
    await stopAgent();
    expect(logOf(`agent-${agentRuns}`)).toContain("SIGTERM: removing the agent's kernel state");
    expect(await links()).toEqual([]);
    expect((await lab.must("host1", ["nft", "list", "tables"])).includes("vipmux")).toBe(false);
    expect(await lab.must("host1", ["ip", "rule", "show"])).not.toContain("proto 247");
    expect(await lab.must("host1", ["ip", "-6", "rule", "show"])).not.toContain("proto 247");
    expect(await lab.must("host1", ["ip", "route", "show", "table", "all"])).not.toContain(
      "proto 247",
    );
    expect(await lab.must("host1", ["vipmux", "host-agent", "cleanup"])).toContain(
      "cleanup: 0 changes",
    );
  });

  it("an IPv6 underlay: the VXLAN device binds the IPv6 PA; VXLAN over IPv6 reaches the DIP", async () => {
    const v6config = join(lab.plan.dir, "host1-v6.yml");
    writeFileSync(
      v6config,
      `node: { name: host1 }
host: { pa: "2001:db8:100:1::2", gateway: 198.51.100.1 }
services:
  - name: web
    vip: 20.20.20.100
    ports: [ { protocol: udp, port: 7, backend-port: 7007 } ]
    vni: 100
    backends: [ { dip: 10.10.1.11, host: "2001:db8:100:1::2" } ]
`,
    );
    await lab.must("host1", ["vipmux", "host-agent", "--config", v6config, "--once"]);
    const l = await links();
    expect(l.map((x) => [x.ifname, x.linkinfo?.info_data?.id])).toEqual([["vmx-100", 100]]);
    expect(await lab.must("host1", ["ip", "-d", "link", "show", "vmx-100"])).toContain(
      "local 2001:db8:100:1::2",
    );
    await udpListen(CLIENT, 40009, "udp-v6underlay-client");
    const spec = { host: "2001:db8:100:1::2", vni: 100, innerMac: INNER_MAC };
    await lab.must("mux1", [
      NODE,
      `${FIX}/mux-send.ts`,
      JSON.stringify({
        ...spec,
        packets: [{ src: CLIENT, dst: VIP, proto: "udp", sport: 40009, dport: 7, payload: "u6" }],
      }),
    ]);
    const got = await received("udp-v6underlay-client");
    expect(got).toEqual([
      { from: `${VIP}:7`, data: "vm11 local=0.0.0.0:7007 remote=203.0.113.10:40009 u6" },
    ]);
    await lab.must("host1", ["vipmux", "host-agent", "cleanup"]);
    expect(await links()).toEqual([]);
  });
});
