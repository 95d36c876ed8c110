// The forwarder against the shared fixture contract (test/fixtures/packets/forwarder-cases.*):
// kernel-captured inputs, the expected verdicts and output bytes.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Forwarder, Verdict } from "../../../src/dataplane/forwarder.ts";
import { dipMacText } from "../../../src/lb/dip-mac.ts";
import { buildForwardingTable } from "../../../src/lb/forwarding-table.ts";
import { formatIp, formatMac } from "../../../src/packet/address.ts";
import { ParsedPacket, parseIpPacket } from "../../../src/packet/parse.ts";
import { parseVxlan, VxlanPacket, VxlanStatus } from "../../../src/packet/vxlan.ts";
import {
  type ForwarderCase,
  model,
  options,
  pcapPath,
  runCases,
} from "../../fixtures/packets/forwarder-cases.ts";
import { buildPacket, verifyIpv4HeaderChecksum } from "../packet/packets.ts";
import { readPcap } from "../packet/pcap.ts";

const expected = JSON.parse(
  readFileSync(
    fileURLToPath(new URL("../../fixtures/packets/forwarder-cases.json", import.meta.url)),
    "utf8",
  ),
) as ForwarderCase[];

describe("forwarder fixture contract", () => {
  it("reproduces every verdict and output byte", () => {
    expect(expected.length).toBeGreaterThan(30);
    expect(runCases()).toEqual(expected);
  });

  it("each expected output decapsulates to its input with TTL - 1, to a host of the service", () => {
    const vnis = new Map(model.services.map((s) => [s.vni, s]));
    for (const c of expected) {
      if (c.out === undefined) continue;
      const input = readPcap(pcapPath(c.pcap))[c.index]!.ip!;
      const out = Buffer.from(c.out, "hex");
      const d = new VxlanPacket();
      expect(parseVxlan(out, 0, out.length, d)).toBe(VxlanStatus.ok);
      const svc = vnis.get(d.vni)!;
      expect(svc).toBeDefined();
      const host = formatIp(out, d.outerDstOffset, d.outerFamily === 4 ? 4 : 16);
      expect(svc.backends.map((b) => b.host)).toContain(host);
      // Inner destination: the MAC of a DIP of the service on that host (dipMac).
      const mac = formatMac(out, d.ethOffset);
      expect(svc.backends.filter((b) => b.host === host).map((b) => dipMacText(b.dip))).toContain(
        mac,
      );
      expect(formatMac(out, d.ethOffset + 6)).toBe(options.innerSrcMac);
      const inner = out.subarray(d.innerOffset, d.innerOffset + d.innerLength);
      expect(inner.length).toBe(input.length);
      const p = new ParsedPacket();
      parseIpPacket(input, input.length, p);
      for (let i = 0; i < input.length; i++) {
        if (i === p.ttlOffset) expect(inner[i]).toBe(input[i]! - 1);
        else if (p.family === 4 && (i === 10 || i === 11)) continue;
        else expect(inner[i], `${c.pcap}[${c.index}] byte ${i}`).toBe(input[i]);
      }
      if (p.family === 4) expect(verifyIpv4HeaderChecksum(inner)).toBe(true);
    }
  });

  it("sends the kernel's Frag Needed / Packet Too Big to the backend of the flow they quote", () => {
    for (const [pcap, server, client] of [
      ["icmp4-frag-needed", "10.201.2.2", "10.201.1.2"],
      ["icmp6-packet-too-big", "fd01:2::2", "fd01:1::2"],
    ] as const) {
      const error = expected.find((c) => c.pcap === pcap && c.out !== undefined && c.index === 1)!;
      expect(error).toBeDefined();
      // The flow the error belongs to: server:53 -> client (the DSR "VIP"):40053.
      const t = buildForwardingTable(model);
      if (!t.ok) throw new Error("model");
      const f = new Forwarder(options);
      f.setTable(t.value);
      const flow = buildPacket({ src: server, dst: client, proto: "udp", sport: 53, dport: 40053 });
      expect(f.forward(flow, flow.length, 0)).toBe(Verdict.forward);
      const d = new VxlanPacket();
      const out = Buffer.from(error.out!, "hex");
      parseVxlan(out, 0, out.length, d);
      const alen = d.outerFamily === 4 ? 4 : 16;
      expect(formatIp(out, d.outerDstOffset, alen)).toBe(formatIp(f.outHost));
    }
  });
});
