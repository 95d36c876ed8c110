// The codec against bytes the Linux kernel produced (test/fixtures/packets, see its README).
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Distribution, flowHash } from "../../../src/lb/flow-hash.ts";
import { formatIp, formatMac } from "../../../src/packet/address.ts";
import { foldComplement, pseudoHeaderSum, sum16 } from "../../../src/packet/checksum.ts";
import {
  isPathMtuSignal,
  ParsedPacket,
  ParseStatus,
  parseIpPacket,
} from "../../../src/packet/parse.ts";
import {
  encapsulateVxlan,
  parseVxlan,
  VxlanEncap,
  VxlanPacket,
  VxlanStatus,
} from "../../../src/packet/vxlan.ts";
import { buildPacket } from "./packets.ts";
import { type PcapRecord, readPcap } from "./pcap.ts";

const fixture = (name: string): PcapRecord[] =>
  readPcap(fileURLToPath(new URL(`../../fixtures/packets/${name}.pcap`, import.meta.url)));

function parsed(ip: Uint8Array): ParsedPacket {
  const p = new ParsedPacket();
  expect(parseIpPacket(ip, ip.length, p)).toBe(ParseStatus.ok);
  return p;
}

/** Verifies the kernel's TCP/UDP/ICMPv6 checksum with our checksum code. */
function l4ChecksumOk(ip: Uint8Array, p: ParsedPacket): boolean {
  const len = p.ipLength - p.l4Offset;
  const srcOff = p.family === 4 ? 12 : 8;
  const dstOff = p.family === 4 ? 16 : 24;
  const init =
    p.proto === 1 ? 0 : pseudoHeaderSum(ip, srcOff, dstOff, p.family === 4 ? 4 : 16, p.proto, len);
  return foldComplement(sum16(ip, p.l4Offset, len, init)) === 0;
}

describe("kernel-captured TCP and UDP", () => {
  for (const [name, client, server] of [
    ["tcp4", "10.201.1.2", "10.201.2.2"],
    ["tcp6", "fd01:1::2", "fd01:2::2"],
  ] as const) {
    it(`parses a whole connection (${name}) and agrees with the kernel's checksums`, () => {
      const recs = fixture(name);
      expect(recs.length).toBeGreaterThanOrEqual(7);
      const flags: number[] = [];
      let clientPort = -1;
      for (const r of recs) {
        const p = parsed(r.ip!);
        expect(p.proto).toBe(6);
        expect(l4ChecksumOk(r.ip!, p)).toBe(true);
        const len = p.flowAddrLen;
        const src = formatIp(r.ip!, p.flowSrcOffset, len);
        if (src === client) {
          expect(formatIp(r.ip!, p.flowDstOffset, len)).toBe(server);
          expect(p.flowDstPort).toBe(8080);
          if (clientPort < 0) clientPort = p.flowSrcPort;
          expect(p.flowSrcPort).toBe(clientPort);
        } else {
          expect(src).toBe(server);
          expect(p.flowSrcPort).toBe(8080);
        }
        flags.push(p.tcpFlags);
      }
      expect(flags.slice(0, 3)).toEqual([0x02, 0x12, 0x10]); // SYN, SYN-ACK, ACK
      expect(flags.some((f) => (f & 0x01) !== 0)).toBe(true); // a FIN
    });
  }

  for (const name of ["udp4", "udp6"]) {
    it(`parses ${name}`, () => {
      const [r] = fixture(name);
      const p = parsed(r!.ip!);
      expect([p.proto, p.flowSrcPort, p.flowDstPort, p.flowHasPorts]).toEqual([17, 40053, 53, 1]);
      expect(l4ChecksumOk(r!.ip!, p)).toBe(true);
    });
  }
});

describe("kernel-captured ICMP", () => {
  it("parses echo request/reply with the identifier as port (IPv4 and IPv6)", () => {
    for (const [name, req, rep] of [
      ["icmp4-echo", 8, 0],
      ["icmp6-echo", 128, 129],
    ] as const) {
      const [a, b] = fixture(name);
      const pa = parsed(a!.ip!);
      const id = pa.flowSrcPort;
      expect([pa.icmpType, pa.flowHasPorts]).toEqual([req, 1]);
      expect(l4ChecksumOk(a!.ip!, pa)).toBe(true);
      const pb = parsed(b!.ip!);
      expect([pb.icmpType, pb.flowSrcPort]).toEqual([rep, id]);
    }
  });

  for (const [name, client, server, type, code] of [
    ["icmp4-frag-needed", "10.201.1.2", "10.201.2.2", 3, 4],
    ["icmp6-packet-too-big", "fd01:1::2", "fd01:2::2", 2, 0],
  ] as const) {
    it(`hashes the kernel's ${name} on the quoted packet, reversed`, () => {
      const recs = fixture(name);
      const err = recs.find((r) => {
        const p = parsed(r.ip!);
        return p.icmpType === type;
      })!;
      const p = parsed(err.ip!);
      expect([p.icmpType, p.icmpCode, p.icmpError]).toEqual([type, code, 1]);
      expect(isPathMtuSignal(p)).toBe(true);
      expect(l4ChecksumOk(err.ip!, p)).toBe(true);
      // The quote is client:40053 -> server:53; the error's flow is its reverse.
      const len = p.flowAddrLen;
      expect(formatIp(err.ip!, p.flowSrcOffset, len)).toBe(server);
      expect(formatIp(err.ip!, p.flowDstOffset, len)).toBe(client);
      expect([p.flowProto, p.flowSrcPort, p.flowDstPort]).toEqual([17, 53, 40053]);
      const reverse = buildPacket({
        src: server,
        dst: client,
        proto: "udp",
        sport: 53,
        dport: 40053,
      });
      const pr = parsed(reverse);
      for (const d of [Distribution.fiveTuple, Distribution.threeTuple, Distribution.twoTuple]) {
        expect(flowHash(err.ip!, p, d, 99)).toBe(flowHash(reverse, pr, d, 99));
      }
    });
  }
});

describe("kernel-produced VXLAN", () => {
  for (const [name, vni, family] of [
    ["vxlan4", 100, 4],
    ["vxlan6", 600, 6],
  ] as const) {
    it(`decapsulates ${name} and re-encapsulates it to the kernel's exact bytes`, () => {
      const recs = fixture(name);
      expect(recs.length).toBe(4);
      const kinds: number[] = [];
      for (const r of recs) {
        const outer = r.ip!;
        const d = new VxlanPacket();
        // The IPv6 one carries a kernel-computed UDP checksum: parseVxlan verifies it.
        expect(parseVxlan(outer, 0, outer.length, d)).toBe(VxlanStatus.ok);
        expect(d.outerFamily).toBe(family);
        expect(d.vni).toBe(vni);
        kinds.push(d.innerEtherType);
        if (d.innerEtherType === 0x0800) {
          const inner = outer.subarray(d.innerOffset, d.innerOffset + d.innerLength);
          const p = parsed(inner);
          expect(p.proto).toBe(1);
        }
        // Our encoder, given the kernel's outer parameters, must produce the kernel's bytes.
        if (d.innerEtherType !== 0x0800) continue; // the encoder carries IP only (ARP stays with Linux)
        const e = new VxlanEncap();
        const alen = family === 4 ? 4 : 16;
        e.outerSrc = outer.slice(d.outerSrcOffset, d.outerSrcOffset + alen);
        e.outerDst = outer.slice(d.outerDstOffset, d.outerDstOffset + alen);
        e.srcPort = d.udpSrcPort;
        e.vni = d.vni;
        e.innerDstMac = outer.slice(d.ethOffset, d.ethOffset + 6);
        e.innerSrcMac = outer.slice(d.ethOffset + 6, d.ethOffset + 12);
        e.ttl = outer[family === 4 ? 8 : 7]!;
        if (family === 4) e.ipId = (outer[4]! << 8) | outer[5]!;
        else e.flowLabel = ((outer[1]! & 0x0f) << 16) | (outer[2]! << 8) | outer[3]!;
        const out = new Uint8Array(2000);
        const udpCsumAt = family === 4 ? 26 : 46;
        if (family === 4) {
          // Our default sends checksum 0 (RFC 7348 §5); the rest must already be identical.
          const n0 = encapsulateVxlan(out, outer, d.innerOffset, d.innerLength, e);
          expect(n0).toBe(outer.length);
          expect([out[udpCsumAt], out[udpCsumAt + 1]]).toEqual([0, 0]);
          out[udpCsumAt] = outer[udpCsumAt]!;
          out[udpCsumAt + 1] = outer[udpCsumAt + 1]!;
          expect(Buffer.from(out.subarray(0, n0)).toString("hex")).toBe(
            Buffer.from(outer).toString("hex"),
          );
          e.ipv4UdpChecksum = true; // Linux computes one by default: so can we
        }
        const n = encapsulateVxlan(out, outer, d.innerOffset, d.innerLength, e);
        expect(n).toBe(outer.length);
        expect(Buffer.from(out.subarray(0, n)).toString("hex")).toBe(
          Buffer.from(outer).toString("hex"),
        );
      }
      expect(kinds).toEqual([0x0806, 0x0806, 0x0800, 0x0800]);
      expect(formatMac(recs[2]!.ip!, family === 4 ? 36 : 56)).toBe(
        family === 4 ? "02:00:00:00:04:01" : "02:00:00:00:06:01",
      );
    });
  }
});
