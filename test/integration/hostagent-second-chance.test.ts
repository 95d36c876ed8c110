// Second chance on the hosts (docs/dataplane.md#second-chance) in the canonical lab, with
// the real host agent on host1 and host2 and this test standing in for the MUXes:
//
//   client ── edge ── mux1 (stand-in MUX: kernel VXLAN devices, inner MACs set per phase)
//              │ ▲      ╲══VXLAN══► host2 (agent) ── vm21 = P, the flow's earlier owner
//              │ │       ╲═VXLAN══► host1 (agent) ── vm11 = C, today's choice; vm12
//              │ └── DSR replies from both hosts       ║
//              └──────────────── host1 passes P's flows on to host2 over VXLAN
//
// mux1 forwards the client's real TCP and UDP flows into VXLAN; a netdev egress chain on
// its devices writes the inner MACs of the phase:
//   A  to P's host, as a MUX sent the flow before: destination dipMac(P), source its own;
//   B  to C's host naming P: destination dipMac(C), source dipMac(P) (what a MUX without
//      an entry for the flow sends after the backend set changed, src/dataplane/forwarder.ts
//      step 6b);
//   N  to C's host without naming P (a MUX without second chance).
// Checked: (a) a TCP connection set up through host2 goes on through host1 in phase B (and
// after it, in phase N: host1 remembers), data echoed by P over DSR, bulk included, while
// C never sees a packet; (b) the same in phase N alone is reset (the scenario); (c) a SYN
// naming P opens a new connection to C; (d) UDP likewise, and a hint naming a local DIP
// (built with the project's VXLAN codec) reaches that DIP; (e) IPv6 over VNI 101.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import { dipMacText, NO_OWNER_MAC } from "../../src/lb/dip-mac.ts";
import { canonicalTopology, isRoot, repoRoot } from "./helpers.ts";

const NODE = process.execPath;
const FIX = `${repoRoot}test/fixtures/second-chance`;
const BACKEND = `${repoRoot}test/fixtures/hostagent-lab/backend.ts`;
const LISTEN = `${repoRoot}test/fixtures/hostagent-lab/client.ts`;
const HOST1 = "198.51.100.2";
const HOST2 = "198.51.100.6";
const VIP = "20.20.20.100";
const VIP6 = "2001:db8:f::100";
const CLIENT = "203.0.113.10";
const DIP = { vm11: "10.10.1.11", vm12: "10.10.1.12", vm21: "10.10.2.21", vm22: "10.10.2.22" };
const DIP6 = {
  vm11: "fd00:10:1::11",
  vm12: "fd00:10:1::12",
  vm21: "fd00:10:2::21",
  vm22: "fd00:10:2::22",
};

const hostConfig = (name: string, pa: string, gw: string, gw6: string) => `
node: { name: ${name} }
host: { pa: ${pa}, gateway: ${gw}, gateway-v6: "${gw6}" }
services:
  - name: web
    vip: ${VIP}
    ports:
      - { protocol: tcp, port: 7, backend-port: 7007 }
      - { protocol: udp, port: 7, backend-port: 7007 }
    vni: 100
    backends:
${Object.entries(DIP)
  .map(([vm, d]) => `      - { dip: ${d}, host: ${vm.startsWith("vm1") ? HOST1 : HOST2} }`)
  .join("\n")}
  - name: web6
    vip: "${VIP6}"
    ports: [ { protocol: tcp, port: 7, backend-port: 7007 } ]
    vni: 101
    backends:
${Object.entries(DIP6)
  .map(([vm, d]) => `      - { dip: "${d}", host: ${vm.startsWith("vm1") ? HOST1 : HOST2} }`)
  .join("\n")}
`;

type Phase = "A" | "B" | "N";

/** mux1's inner MACs in a phase: P = vm21 on host2, C = vm11 on host1. */
function phaseScript(phase: Phase): string {
  const set = (p: string, c: string) =>
    phase === "A"
      ? { dst: dipMacText(p), src: NO_OWNER_MAC }
      : { dst: dipMacText(c), src: phase === "B" ? dipMacText(p) : NO_OWNER_MAC };
  const v4 = set(DIP.vm21, DIP.vm11);
  const v6 = set(DIP6.vm21, DIP6.vm11);
  const chain = (dev: string, m: { dst: string; src: string }) =>
    `\tchain ${dev} {\n\t\ttype filter hook egress device "${dev}" priority filter; policy accept;\n\t\tcounter ether daddr set ${m.dst} ether saddr set ${m.src}\n\t}`;
  return `table netdev mux\ndelete table netdev mux\ntable netdev mux {\n${chain("mx100", v4)}\n${chain("mx101", v6)}\n}\n`;
}

interface Step {
  step?: number;
  lines?: number;
  by?: string[];
  error?: string;
  connected?: string;
}

describe.skipIf(!isRoot)(
  "second chance: hosts pass flows they do not know to the earlier owner's host",
  () => {
    let lab: TestLab;
    let conns = 0;

    const logOf = (name: string) => {
      const f = join(lab.plan.dir, `${name}.log`);
      return existsSync(f) ? readFileSync(f, "utf8") : "";
    };
    const events = (name: string): Step[] =>
      logOf(name)
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Step);

    const phase = (p: Phase) => lab.must("mux1", ["nft", "-f", "-"], { input: phaseScript(p) });

    /** One TCP connection from the client; `step(n, lines)` sends and waits for the echo. */
    async function connection(addr: string) {
      const name = `conn-${++conns}`;
      const dir = join(lab.plan.dir, name);
      mkdirSync(dir);
      lab.spawn("client", [NODE, `${FIX}/client.ts`, "conn", addr, "7", dir], name);
      let next = 1;
      const result = (n: number) =>
        pollUntil(async () => events(name).find((e) => e.step === n || e.error !== undefined), {
          timeoutMs: 15_000,
          what: `${name} step ${n}`,
        });
      return {
        name,
        first: () => result(0),
        async step(lines = 1): Promise<Step> {
          const n = next++;
          writeFileSync(join(dir, `step-${n}`), String(lines));
          return result(n);
        },
        stop: () => writeFileSync(join(dir, "stop"), ""),
        errors: () => events(name).filter((e) => e.error !== undefined),
      };
    }

    const udp = async (addr: string, sport: number, msg: string) => {
      const out = await lab.must("client", [
        NODE,
        `${FIX}/client.ts`,
        "udp",
        addr,
        "7",
        String(sport),
        msg,
      ]);
      return JSON.parse(out.trim().split("\n").pop()!) as { reply?: string; timeout?: boolean };
    };

    const conntrack = async (node: string) =>
      (await lab.must(node, ["cat", "/proc/net/nf_conntrack"])).split("\n").filter(Boolean);

    beforeAll(async () => {
      lab = await startLab(canonicalTopology, "sc", { skipCmd: true });
      for (const [node, pa, gw, gw6] of [
        ["host1", HOST1, "198.51.100.1", "2001:db8:100:1::1"],
        ["host2", HOST2, "198.51.100.5", "2001:db8:100:2::1"],
      ] as const) {
        const file = join(lab.plan.dir, `${node}-sc.yml`);
        writeFileSync(file, hostConfig(node, pa, gw, gw6));
        await lab.must(node, ["vipmux", "host-agent", "--config", file, "--once"]);
      }
      for (const vm of ["vm11", "vm12", "vm21"])
        lab.spawn(vm, [NODE, BACKEND, vm, "tcp:7007", "udp:7007"], `backend-${vm}`);

      // mux1: kernel VXLAN devices (NOARP: the VIP routes need no neighbour, the egress
      // chain writes the inner MACs), FDB entries of the DIP MACs to their hosts.
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
        await m(["ip", "link", "set", dev, "arp", "off", "up"]);
      }
      for (const [vm, host] of [
        ["vm11", HOST1],
        ["vm12", HOST1],
        ["vm21", HOST2],
      ] as const) {
        const v = vm as keyof typeof DIP;
        await m(["bridge", "fdb", "append", dipMacText(DIP[v]), "dev", "mx100", "dst", host]);
        await m(["bridge", "fdb", "append", dipMacText(DIP6[v]), "dev", "mx101", "dst", host]);
      }
      await m(["ip", "route", "add", `${VIP}/32`, "dev", "mx100"]);
      await m(["ip", "-6", "route", "add", `${VIP6}/128`, "dev", "mx101"]);
      await phase("A");
      await lab.must("edge", ["ip", "route", "add", `${VIP}/32`, "via", "192.0.2.2"]);
      await lab.must("edge", ["ip", "-6", "route", "add", `${VIP6}/128`, "via", "2001:db8:0:1::2"]);
      await pollUntil(
        async () =>
          ["vm11", "vm12", "vm21"].every((vm) => logOf(`backend-${vm}`).includes("listening")),
        { timeoutMs: 15_000, what: "backends" },
      );
    }, 120_000);

    afterAll(async () => {
      await lab?.down();
    });

    it("the agents program the pass path: FDB entries, NOARP devices, pass route and rule; a second pass changes nothing", async () => {
      const fdb = await lab.must("host1", ["bridge", "fdb", "show", "dev", "vmx-100"]);
      expect(fdb).toContain(`${dipMacText(DIP.vm21)} dst ${HOST2} self permanent`);
      expect(fdb).toContain(`${dipMacText(DIP.vm22)} dst ${HOST2} self permanent`);
      expect(fdb).not.toContain(dipMacText(DIP.vm11));
      expect(await lab.must("host1", ["ip", "-o", "link", "show", "vmx-100"])).toContain("NOARP");
      expect(await lab.must("host1", ["ip", "rule", "show"])).toMatch(
        /4789:\s+from all fwmark 0x2000000\/0x2000000 iif vmx-100 lookup 33554532 proto 247/,
      );
      expect(await lab.must("host1", ["ip", "-6", "rule", "show"])).toMatch(
        /4789:\s+from all fwmark 0x2000000\/0x2000000 iif vmx-101 lookup 33554533 proto 247/,
      );
      expect(await lab.must("host1", ["ip", "route", "show", "table", "33554532"])).toMatch(
        /^default dev vmx-100 proto 247 scope link/,
      );
      expect(await lab.must("host2", ["bridge", "fdb", "show", "dev", "vmx-100"])).toContain(
        `${dipMacText(DIP.vm11)} dst ${HOST1} self permanent`,
      );
      const again = await lab.must("host1", [
        "vipmux",
        "host-agent",
        "--config",
        join(lab.plan.dir, "host1-sc.yml"),
        "--once",
      ]);
      expect(again).toMatch(/reconciled: 0 changes/);
    });

    it("(a) a TCP connection of P goes on through C's host with the hint, and after it; C sees nothing", async () => {
      await phase("A");
      const c = await connection(VIP);
      expect(await c.first()).toMatchObject({ step: 0, by: ["vm21"] });
      // Any packet that reaches vm11 on the echo port would show here.
      const capture: ChildProcess = lab.spawn(
        "vm11",
        ["timeout", "30", "tcpdump", "-i", "eth1", "-n", "-l", "tcp port 7007"],
        "capture-vm11",
      );
      await pollUntil(async () => logOf("capture-vm11").includes("listening on"), {
        timeoutMs: 10_000,
        what: "tcpdump in vm11",
      });
      await phase("B");
      expect(await c.step()).toMatchObject({ lines: 1, by: ["vm21"] });
      // Bulk (GRO'd on the way in, segmented again on the way out of host1).
      expect(await c.step(300)).toMatchObject({ lines: 300, by: ["vm21"] });
      // host1 decided once and remembers: without the hint the flow still goes to P.
      await phase("N");
      expect(await c.step()).toMatchObject({ lines: 1, by: ["vm21"] });
      expect(c.errors()).toEqual([]);
      c.stop();
      const exited = new Promise((r) => capture.once("exit", r));
      capture.kill("SIGTERM");
      await exited;
      expect(logOf("capture-vm11")).not.toMatch(/ IP6? /);
      // host1's entry for the flow: passed on (mark 0x020a0215 = pass flag + vm21's bits),
      // never answered here (the replies left host2 by DSR).
      const port = events(c.name)
        .find((e) => e.connected)!
        .connected!.split(":")
        .pop();
      const ct = (await conntrack("host1")).find((l) => l.includes(`sport=${port} dport=7 `));
      expect(ct).toContain("[UNREPLIED]");
      expect(ct).toContain(`mark=${0x020a0215}`);
      const egress = await lab.must("host1", [
        "nft",
        "list",
        "chain",
        "netdev",
        "vipmux-vni-100",
        "egress",
      ]);
      expect(egress).toMatch(/counter packets [1-9]\d* bytes \d+ ether daddr set/);
    });

    it("(b) without the hint the same connection is reset by C (the failure second chance avoids)", async () => {
      await phase("A");
      const c = await connection(VIP);
      expect(await c.first()).toMatchObject({ step: 0, by: ["vm21"] });
      await phase("N");
      expect(await c.step()).toMatchObject({ error: "ECONNRESET" });
    });

    it("(c) a SYN naming P is a new connection: C's host takes it", async () => {
      await phase("B");
      const c = await connection(VIP);
      expect(await c.first()).toMatchObject({ step: 0, by: ["vm11"] });
      expect(await c.step()).toMatchObject({ lines: 1, by: ["vm11"] });
      c.stop();
    });

    it("(d) UDP: a flow of P goes on to P; a new flow named to P lands on P; a hint naming a local DIP reaches it", async () => {
      await phase("A");
      expect((await udp(VIP, 41000, "one")).reply).toMatch(/^vm21 .* one$/);
      await phase("B");
      expect((await udp(VIP, 41000, "two")).reply).toMatch(/^vm21 .* two$/);
      // No entry here or at P's host: P's host takes it as new (documented).
      expect((await udp(VIP, 41001, "new-named")).reply).toMatch(/^vm21 /);
      await phase("N");
      expect((await udp(VIP, 41002, "new-plain")).reply).toMatch(/^vm11 /);
      expect((await udp(VIP, 41000, "three")).reply).toMatch(/^vm21 .* three$/);
      // The project's codec as the MUX: C = vm11, earlier owner vm12 on the same host.
      lab.spawn(
        "client",
        [NODE, LISTEN, "udp-listen", CLIENT, "41010", "1", "8000"],
        "listen-local",
      );
      await pollUntil(async () => logOf("listen-local").includes("listening"), {
        timeoutMs: 10_000,
        what: "udp listener",
      });
      await lab.must("mux1", [
        NODE,
        `${FIX}/mux-send.ts`,
        JSON.stringify({
          host: HOST1,
          vni: 100,
          innerDstMac: dipMacText(DIP.vm11),
          innerSrcMac: dipMacText(DIP.vm12),
          src: CLIENT,
          dst: VIP,
          sport: 41010,
          dport: 7,
          payload: "local-owner",
        }),
      ]);
      const got = await pollUntil(
        async () =>
          logOf("listen-local")
            .split("\n")
            .filter((l) => l.startsWith('{"received"'))
            .map((l) => JSON.parse(l) as { received: { data: string }[] })[0]?.received,
        { timeoutMs: 12_000, what: "answer to the codec's packet" },
      );
      expect(got.map((r) => r.data.split(" ")[0])).toEqual(["vm12"]);
    });

    it("(e) IPv6 (VNI 101): a connection of P goes on through C's host with the hint", async () => {
      await phase("A");
      const c = await connection(VIP6);
      expect(await c.first()).toMatchObject({ step: 0, by: ["vm21"] });
      await phase("B");
      expect(await c.step()).toMatchObject({ lines: 1, by: ["vm21"] });
      expect(await c.step(100)).toMatchObject({ lines: 100, by: ["vm21"] });
      expect(c.errors()).toEqual([]);
      c.stop();
      // A new IPv6 connection naming P: C's.
      const d = await connection(VIP6);
      expect(await d.first()).toMatchObject({ step: 0, by: ["vm11"] });
      d.stop();
    });

    it("host1 passed packets back out of the device they came in on without sending ICMP redirects", async () => {
      const snmp = (await lab.must("host1", ["cat", "/proc/net/snmp"])).split("\n");
      const icmp = snmp.filter((l) => l.startsWith("Icmp:")).map((l) => l.split(/\s+/));
      const out4 = Number(icmp[1]![icmp[0]!.indexOf("OutRedirects")]);
      const out6 = /Icmp6OutRedirects\s+(\d+)/.exec(
        await lab.must("host1", ["cat", "/proc/net/snmp6"]),
      )?.[1];
      expect([out4, Number(out6)]).toEqual([0, 0]);
      // ...and it did pass packets of both VNIs: their egress chains counted them.
      for (const vni of ["100", "101"])
        expect(
          await lab.must("host1", [
            "nft",
            "list",
            "chain",
            "netdev",
            `vipmux-vni-${vni}`,
            "egress",
          ]),
        ).toMatch(/counter packets [1-9]\d* bytes \d+ ether daddr set/);
    });
  },
);
