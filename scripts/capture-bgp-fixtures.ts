// Extracts BGP messages from a pcap written by scripts/capture-bgp-fixtures.sh:
// reassembles each TCP direction of port 179 by sequence number, frames it with the wire
// codec's Framer, and writes `<sender>-to-<receiver>.hex` (one message per line, in order).
//
//   node scripts/capture-bgp-fixtures.ts <pcap> <out-dir> "<ip>=<name>,<ip>=<name>" "<versions>"

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Framer } from "../src/bgp/wire/framer.ts";

interface Segment {
  seq: number;
  data: Uint8Array;
}

interface Flow {
  src: string;
  dst: string;
  isn?: number;
  segments: Segment[];
}

function ipText(b: Uint8Array, off: number, v6: boolean): string {
  if (!v6) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16));
  return g.join(":");
}

function readPcap(file: string): Map<string, Flow> {
  const buf = readFileSync(file);
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && buf.readUInt32BE(0) !== 0xa1b2c3d4 && buf.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error("not a pcap file");
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linktype = u32(20);
  if (linktype !== 1) throw new Error(`link type ${linktype}, expected Ethernet`);
  const flows = new Map<string, Flow>();
  for (let p = 24; p + 16 <= buf.length; ) {
    const caplen = u32(p + 8);
    const pkt = new Uint8Array(buf.buffer, buf.byteOffset + p + 16, caplen);
    p += 16 + caplen;
    const ethType = (pkt[12]! << 8) | pkt[13]!;
    let ip = 14;
    let proto: number;
    let src: string;
    let dst: string;
    let end: number;
    if (ethType === 0x0800) {
      proto = pkt[ip + 9]!;
      src = ipText(pkt, ip + 12, false);
      dst = ipText(pkt, ip + 16, false);
      end = ip + ((pkt[ip + 2]! << 8) | pkt[ip + 3]!);
      ip += (pkt[ip]! & 0x0f) * 4;
    } else if (ethType === 0x86dd) {
      proto = pkt[ip + 6]!;
      src = ipText(pkt, ip + 8, true);
      dst = ipText(pkt, ip + 24, true);
      end = ip + 40 + ((pkt[ip + 4]! << 8) | pkt[ip + 5]!);
      ip += 40;
    } else continue;
    if (proto !== 6) continue;
    const sport = (pkt[ip]! << 8) | pkt[ip + 1]!;
    const dport = (pkt[ip + 2]! << 8) | pkt[ip + 3]!;
    const seq = new DataView(pkt.buffer, pkt.byteOffset + ip + 4, 4).getUint32(0);
    const flags = pkt[ip + 13]!;
    const payload = pkt.slice(ip + (pkt[ip + 12]! >> 4) * 4, end);
    const key = `${src}:${sport}>${dst}:${dport}`;
    let flow = flows.get(key);
    if (!flow) {
      flow = { src, dst, segments: [] };
      flows.set(key, flow);
    }
    if (flags & 0x02) flow.isn = (seq + 1) >>> 0; // SYN
    if (payload.length > 0) flow.segments.push({ seq, data: payload });
  }
  return flows;
}

/** In-order bytes of one direction; retransmitted or overlapping data is taken once. */
function reassemble(flow: Flow): Uint8Array {
  if (flow.isn === undefined) throw new Error(`no SYN seen for ${flow.src} -> ${flow.dst}`);
  const isn = flow.isn;
  const rel = (s: number) => (s - isn) >>> 0;
  const segs = [...flow.segments].sort((a, b) => rel(a.seq) - rel(b.seq));
  const out: Uint8Array[] = [];
  let next = 0;
  for (const s of segs) {
    const start = rel(s.seq);
    if (start > next) throw new Error(`gap in ${flow.src} -> ${flow.dst} at ${next}`);
    const skip = next - start;
    if (skip >= s.data.length) continue;
    out.push(s.data.subarray(skip));
    next = start + s.data.length;
  }
  return Buffer.concat(out);
}

const [pcap, outDir, names, versions] = process.argv.slice(2);
if (!pcap || !outDir || !names) {
  console.error("usage: capture-bgp-fixtures.ts <pcap> <out-dir> <ip=name,...> [versions]");
  process.exit(2);
}
const nameOf = new Map(names.split(",").map((kv) => kv.split("=") as [string, string]));
// Both speakers may connect at once (RFC 4271 §6.8 collision) or reconnect: keep, per pair
// of speakers, the TCP connection that carried the most data, both of its directions.
const flows = [...readPcap(pcap).entries()];
const connections = new Map<string, { bytes: number; flows: Flow[] }>();
for (const [key, flow] of flows) {
  if (!nameOf.has(flow.src) || !nameOf.has(flow.dst) || flow.isn === undefined) continue;
  const [a, b] = key.split(">") as [string, string];
  const conn = [a, b].sort().join("|");
  const entry = connections.get(conn) ?? { bytes: 0, flows: [] };
  entry.bytes += flow.segments.reduce((n, s) => n + s.data.length, 0);
  entry.flows.push(flow);
  connections.set(conn, entry);
}
const ranked = [...connections.values()].sort((x, y) => y.bytes - x.bytes);
if (ranked.length === 0) throw new Error("no complete BGP connection in the capture");

function messagesOf(flow: Flow, from: string, to: string): string[] {
  const framer = new Framer(65535);
  framer.push(reassemble(flow));
  const out: string[] = [];
  for (let f = framer.next(); f; f = framer.next()) {
    if (!f.ok) throw new Error(`${from} -> ${to}: ${f.error.reason}`);
    out.push(Buffer.from(f.value.message).toString("hex"));
  }
  // A connection cut mid-message (killed peer) keeps its complete messages only.
  return out;
}

// The busiest connection goes to `<from>-to-<to>.hex`; any other complete connection (an
// earlier one that a peer closed, or a collision loser) to `<from>-to-<to>.extra.hex`.
const files = new Map<string, string[]>();
ranked.forEach((conn, rank) => {
  for (const flow of conn.flows) {
    const from = nameOf.get(flow.src)!;
    const to = nameOf.get(flow.dst)!;
    const file = join(outDir, `${from}-to-${to}${rank === 0 ? "" : ".extra"}.hex`);
    const lines = files.get(file) ?? [
      `# BGP messages sent by ${from} to ${to}, one per line (hex). Captured by scripts/capture-bgp-fixtures.sh; ${versions ?? ""}`,
    ];
    if (rank > 0) lines.push(`# connection ${rank}`);
    lines.push(...messagesOf(flow, from, to));
    files.set(file, lines);
  }
});
for (const [file, lines] of files) {
  writeFileSync(file, `${lines.join("\n")}\n`);
  console.log(`${file}: ${lines.filter((l) => !l.startsWith("#")).length} messages`);
}
