// Test helper: reads classic libpcap files (the format tcpdump -w writes), Ethernet link type.
import { readFileSync } from "node:fs";

export interface PcapRecord {
  /** The captured frame, starting at the Ethernet header. */
  frame: Uint8Array;
  /** The IP packet after the Ethernet header (undefined for non-IP frames). */
  ip: Uint8Array | undefined;
  etherType: number;
}

export function readPcap(path: string): PcapRecord[] {
  const b = readFileSync(path);
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`${path}: not a pcap file`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  if (u32(20) !== 1) throw new Error(`${path}: link type ${u32(20)}, expected Ethernet (1)`);
  const out: PcapRecord[] = [];
  for (let o = 24; o + 16 <= b.length; ) {
    const incl = u32(o + 8);
    const orig = u32(o + 12);
    if (incl !== orig) throw new Error(`${path}: truncated capture (snaplen)`);
    const frame = new Uint8Array(b.subarray(o + 16, o + 16 + incl));
    const etherType = (frame[12]! << 8) | frame[13]!;
    const ip = etherType === 0x0800 || etherType === 0x86dd ? frame.subarray(14) : undefined;
    out.push({ frame, ip, etherType });
    o += 16 + incl;
  }
  return out;
}
