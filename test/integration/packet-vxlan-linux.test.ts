// Differential test against Linux: what vipmux's forwarder encapsulates, a Linux VXLAN
// device decapsulates and delivers intact. Two namespaces joined by a veth:
//
//   vmxpkt-mux  vm0 10.202.0.1 / fd02::1  ==veth==  vh0 10.202.0.2 / fd02::2  vmxpkt-host
//                                                   vx4: VXLAN VNI 100 over IPv4
//                                                   vx6: VXLAN VNI 600 over IPv6
//
// The forwarder's output (outer IP header and all) is sent as a raw Ethernet frame from
// vmxpkt-mux (AF_PACKET, so the kernel adds nothing), to the host's VXLAN endpoint. The
// host's VXLAN devices own the VIPs, so:
// - UDP: a socket bound to the VIP in vmxpkt-host receives the exact payload from the
//   client's address and port;
// - TCP and ICMP: tcpdump on the VXLAN device shows the inner packet byte for byte as the
//   forwarder emitted it (TTL decremented), and the kernel answers it (SYN-ACK or RST, echo
//   reply), proving it accepted the IP and L4 checksums.
// Inner IPv4 and IPv6, outer IPv4 and IPv6. Namespaces are removed in afterAll, and any
// left over from an interrupted run are removed first.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Forwarder, Verdict } from "../../src/dataplane/forwarder.ts";
import { dipMacText } from "../../src/lb/dip-mac.ts";
import { buildForwardingTable } from "../../src/lb/forwarding-table.ts";
import type { ServiceModel } from "../../src/lb/service.ts";
import { ParsedPacket, parseIpPacket } from "../../src/packet/parse.ts";
import { buildPacket } from "../unit/packet/packets.ts";
import { readPcap } from "../unit/packet/pcap.ts";

const MUX = "vmxpkt-mux";
const HOST = "vmxpkt-host";
const MUX_MAC = "02:00:00:02:00:01";
const HOST_MAC = "02:00:00:02:00:02";
// Every service's one backend is DIP 10.10.10.11, and the forwarder writes the chosen DIP's
// MAC as the inner destination (dipMac): the host's VXLAN devices carry that MAC, so a bare
// Linux device (no host agent) accepts exactly what the MUX addresses to that DIP.
const DIP = "10.10.10.11";
const VXLAN_MAC = dipMacText(DIP);
const isRoot = process.getuid?.() === 0;

function sh(args: string[]): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}
const inNs = (ns: string, args: string[]) => sh(["ip", "netns", "exec", ns, ...args]);

function teardown(): void {
  for (const ns of [MUX, HOST]) spawnSync("ip", ["netns", "del", ns]);
}

function setup(): void {
  teardown();
  sh(["ip", "netns", "add", MUX]);
  sh(["ip", "netns", "add", HOST]);
  sh([
    "ip",
    "link",
    "add",
    "vm0",
    "netns",
    MUX,
    "address",
    MUX_MAC,
    "type",
    "veth",
    "peer",
    "name",
    "vh0",
    "netns",
    HOST,
    "address",
    HOST_MAC,
  ]);
  for (const [ns, dev, v4, v6] of [
    [MUX, "vm0", "10.202.0.1/24", "fd02::1/64"],
    [HOST, "vh0", "10.202.0.2/24", "fd02::2/64"],
  ] as const) {
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    sh(["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
    sh(["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
    sh(["ip", "-n", ns, "link", "set", dev, "up"]);
  }
  const vx = [
    [
      "vx4",
      "100",
      "10.202.0.2",
      "20.20.20.100/32",
      "2001:db8:100::10/128",
      "198.51.100.7",
      "2001:db8::77",
    ],
    [
      "vx6",
      "600",
      "fd02::2",
      "20.20.20.106/32",
      "2001:db8:600::10/128",
      "198.51.100.66",
      "2001:db8:6::77",
    ],
  ] as const;
  for (const [dev, vni, local, vip4, vip6, client4, client6] of vx) {
    sh([
      "ip",
      "-n",
      HOST,
      "link",
      "add",
      dev,
      "address",
      VXLAN_MAC,
      "type",
      "vxlan",
      "id",
      vni,
      "local",
      local,
      "dstport",
      "4789",
      "nolearning",
    ]);
    sh(["ip", "-n", HOST, "addr", "add", vip4, "dev", dev]);
    sh(["ip", "-n", HOST, "addr", "add", vip6, "dev", dev, "nodad"]);
    sh(["ip", "-n", HOST, "link", "set", dev, "up"]);
    // Replies to the (fictional) clients go back out of the same device, to a fixed MAC.
    sh(["ip", "-n", HOST, "route", "add", `${client4}/32`, "dev", dev]);
    sh(["ip", "-n", HOST, "-6", "route", "add", `${client6}/128`, "dev", dev]);
    sh([
      "ip",
      "-n",
      HOST,
      "neigh",
      "add",
      client4,
      "lladdr",
      MUX_MAC,
      "dev",
      dev,
      "nud",
      "permanent",
    ]);
    sh([
      "ip",
      "-n",
      HOST,
      "-6",
      "neigh",
      "add",
      client6,
      "lladdr",
      MUX_MAC,
      "dev",
      dev,
      "nud",
      "permanent",
    ]);
  }
  // The clients are not on-link for the host: strict reverse-path filtering would drop them.
  inNs(HOST, [
    "sysctl",
    "-qw",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv4.conf.vx4.rp_filter=0",
    "net.ipv4.conf.vx6.rp_filter=0",
  ]);
  // Neighbour entries for the outer hop, so the first frame is not lost to resolution.
  sh([
    "ip",
    "-n",
    MUX,
    "neigh",
    "replace",
    "10.202.0.2",
    "lladdr",
    HOST_MAC,
    "dev",
    "vm0",
    "nud",
    "permanent",
  ]);
}

function model(): ServiceModel {
  const svc = (name: string, vip: string, vni: number, host: string) => ({
    name,
    vip,
    vni,
    ports: [
      { protocol: "tcp" as const, port: 80 },
      { protocol: "udp" as const, port: 5353 },
      { protocol: "icmp" as const },
    ],
    backends: [{ dip: DIP, host }],
  });
  return {
    services: [
      svc("v4-over-v4", "20.20.20.100", 100, "10.202.0.2"),
      svc("v6-over-v4", "2001:db8:100::10", 100, "10.202.0.2"),
      svc("v4-over-v6", "20.20.20.106", 600, "fd02::2"),
      svc("v6-over-v6", "2001:db8:600::10", 600, "fd02::2"),
    ],
  };
}

/** Sends raw Ethernet frames (hex) out of vm0 in the MUX namespace via AF_PACKET. */
function sendFrames(framesHex: string[]): void {
  const py = [
    "import socket, sys",
    "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
    "s.bind(('vm0', 0))",
    "for h in sys.argv[1:]: s.send(bytes.fromhex(h))",
  ].join("\n");
  inNs(MUX, ["python3", "-c", py, ...framesHex]);
}

/** Ethernet header from the MUX's veth to the host's, then the forwarder's outer packet. */
function frame(out: Uint8Array, len: number): string {
  const mac = (m: string) => m.replaceAll(":", "");
  const etherType = out[0]! >>> 4 === 4 ? "0800" : "86dd";
  return (
    mac(HOST_MAC) + mac(MUX_MAC) + etherType + Buffer.from(out.subarray(0, len)).toString("hex")
  );
}

/** Waits until `proc` prints `text` on stdout or stderr. */
function waitFor(proc: ChildProcess, text: string, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for "${text}": ${seen}`)),
      ms,
    );
    const on = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout?.on("data", on);
    proc.stderr?.on("data", on);
  });
}

function exited(proc: ChildProcess, ms = 5000): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      resolve();
    }, ms);
    proc.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const children: ChildProcess[] = [];
let dir = "";

describe.skipIf(!isRoot)("vipmux VXLAN into a Linux VXLAN device", () => {
  const fwd = new Forwarder({
    localV4: "10.202.0.1",
    localV6: "fd02::1",
    innerSrcMac: MUX_MAC,
  });

  beforeAll(() => {
    setup();
    dir = mkdtempSync(join(tmpdir(), "vmxpkt-"));
    const t = buildForwardingTable(model());
    if (!t.ok) throw new Error(t.error.join("\n"));
    const r = fwd.setTable(t.value);
    if (!r.ok) throw new Error(r.error.join("\n"));
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await Promise.all(children.map((c) => exited(c, 2000)));
    teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
    expect(sh(["ip", "netns", "list"])).not.toMatch(/vmxpkt-(mux|host)\b/);
  });

  const cases = [
    {
      name: "inner IPv4, outer IPv4",
      vip: "20.20.20.100",
      client: "198.51.100.7",
      dev: "vx4",
      outer: 4,
    },
    {
      name: "inner IPv6, outer IPv4",
      vip: "2001:db8:100::10",
      client: "2001:db8::77",
      dev: "vx4",
      outer: 4,
    },
    {
      name: "inner IPv4, outer IPv6",
      vip: "20.20.20.106",
      client: "198.51.100.66",
      dev: "vx6",
      outer: 6,
    },
    {
      name: "inner IPv6, outer IPv6",
      vip: "2001:db8:600::10",
      client: "2001:db8:6::77",
      dev: "vx6",
      outer: 6,
    },
  ] as const;

  /** Starts a UDP listener on vip:5353 in the host namespace; resolves once it is bound. */
  async function udpListener(
    vip: string,
    waitMs: number,
  ): Promise<{ proc: ChildProcess; output: () => string }> {
    const listener = [
      "import { createSocket } from 'node:dgram';",
      `const s = createSocket('${vip.includes(":") ? "udp6" : "udp4"}');`,
      "s.on('message', (m, r) => { console.log(JSON.stringify({ hex: m.toString('hex'), from: r.address, port: r.port })); process.exit(0); });",
      `s.bind(5353, '${vip}', () => console.log('ready'));`,
      `setTimeout(() => process.exit(3), ${waitMs});`,
    ].join("\n");
    const file = join(dir, `udp-${vip.replaceAll(":", "_")}-${children.length}.mjs`);
    writeFileSync(file, listener);
    const proc = spawn("ip", ["netns", "exec", HOST, process.execPath, file], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(proc);
    let out = "";
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(proc, "ready");
    return { proc, output: () => out };
  }

  for (const c of cases) {
    it(`UDP, ${c.name}: a socket on the VIP receives the payload from the client`, async () => {
      const { proc, output } = await udpListener(c.vip, 8000);
      const payload = Buffer.from(`vipmux says hello over ${c.name}`);
      const pkt = buildPacket({
        src: c.client,
        dst: c.vip,
        proto: "udp",
        sport: 40000,
        dport: 5353,
        payload,
      });
      expect(fwd.forward(pkt, pkt.length, Date.now())).toBe(Verdict.forward);
      expect(fwd.out[0]! >>> 4).toBe(c.outer);
      sendFrames([frame(fwd.out, fwd.outLength)]);
      await exited(proc, 8000);
      const out = output();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      expect(line, `no datagram received (exit ${proc.exitCode})`).toBeDefined();
      const got = JSON.parse(line!) as { hex: string; from: string; port: number };
      expect(got.hex).toBe(payload.toString("hex"));
      expect(got.from.replace(/^::ffff:/, "")).toBe(c.client);
      expect(got.port).toBe(40000);
    });

    it(`TCP and ICMP, ${c.name}: the inner packets arrive byte for byte and the kernel answers them`, async () => {
      const pcap = join(dir, `${c.dev}-${c.vip.replaceAll(":", "_")}.pcap`);
      const dump = spawn(
        "ip",
        [
          "netns",
          "exec",
          HOST,
          "tcpdump",
          "-Z",
          "root",
          "--immediate-mode",
          "-i",
          c.dev,
          "-U",
          "-n",
          "-s",
          "0",
          "-w",
          pcap,
        ],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      children.push(dump);
      await waitFor(dump, "listening on");
      const syn = buildPacket({
        src: c.client,
        dst: c.vip,
        proto: "tcp",
        sport: 41000,
        dport: 80,
        flags: 0x02,
      });
      const echo = buildPacket({
        src: c.client,
        dst: c.vip,
        proto: "icmp",
        icmpRest: 0x77770001,
        payload: Buffer.from("vipmux-echo"),
      });
      const sent: string[] = [];
      const frames: string[] = [];
      for (const pkt of [syn, echo]) {
        expect(fwd.forward(pkt, pkt.length, Date.now())).toBe(Verdict.forward);
        frames.push(frame(fwd.out, fwd.outLength));
        // What the host must see: the packet with TTL / hop limit one lower.
        const expected = pkt.slice();
        const p = new ParsedPacket();
        parseIpPacket(expected, expected.length, p);
        expected[p.ttlOffset]!--;
        if (p.family === 4) {
          expected[10] = 0;
          expected[11] = 0;
          let s = 0;
          for (let i = 0; i < 20; i += 2) s += (expected[i]! << 8) | expected[i + 1]!;
          while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
          expected[10] = (~s >> 8) & 0xff;
          expected[11] = ~s & 0xff;
        }
        sent.push(Buffer.from(expected).toString("hex"));
      }
      sendFrames(frames);
      await new Promise((r) => setTimeout(r, 700));
      dump.kill("SIGINT");
      await exited(dump);
      const captured = readPcap(pcap).filter((r) => r.ip !== undefined);
      const hex = captured.map((r) => Buffer.from(r.ip!).toString("hex"));
      // Both inner packets delivered exactly as vipmux sent them...
      for (const s of sent) expect(hex).toContain(s);
      // ...and answered: the kernel validated the IP and L4 checksums and replied.
      const replies = captured.map((r) => {
        const p = new ParsedPacket();
        parseIpPacket(r.ip!, r.ip!.length, p);
        return p;
      });
      const tcpReply = replies.find(
        (p) => p.proto === 6 && p.flowSrcPort === 80 && p.flowDstPort === 41000,
      );
      expect(tcpReply, "no SYN-ACK/RST from the host").toBeDefined();
      expect(tcpReply!.tcpFlags & 0x04 || tcpReply!.tcpFlags & 0x12).toBeTruthy();
      const echoReply = replies.find(
        (p) => p.icmpType === (c.vip.includes(":") ? 129 : 0) && p.flowSrcPort === 0x7777,
      );
      expect(echoReply, "no echo reply from the host").toBeDefined();
    });
  }

  it("control: Linux drops the same datagram when the outer IPv6 UDP checksum is wrong", async () => {
    // Shows the IPv6 cases above pass because the checksum vipmux computes is right.
    const { proc, output } = await udpListener("2001:db8:600::10", 1500);
    const pkt = buildPacket({
      src: "2001:db8:6::77",
      dst: "2001:db8:600::10",
      proto: "udp",
      sport: 40001,
      dport: 5353,
    });
    expect(fwd.forward(pkt, pkt.length, Date.now())).toBe(Verdict.forward);
    fwd.out[47]! ^= 0x01; // outer UDP checksum, low byte
    sendFrames([frame(fwd.out, fwd.outLength)]);
    await exited(proc, 5000);
    expect(proc.exitCode).toBe(3); // timed out: nothing delivered
    expect(output()).not.toContain("{");
  });
});
