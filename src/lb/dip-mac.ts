// One inner Ethernet destination MAC per DIP: how a MUX tells the host which of its DIPs
// it chose. The MUX encapsulates the client's packet unchanged (destination = VIP); the
// inner Ethernet destination is the only field it is free to set, so it carries the
// choice, and the host agent maps it back to the DIP (nftables netdev ingress on the VXLAN
// device, docs/host-agent.md). Both sides compute it from the DIP alone, with this one
// function, so it needs no coordination and no state.
//
//   IPv4 DIP a.b.c.d  →  02:76:aa:bb:cc:dd   (the address bytes, in order)
//   IPv6 DIP          →  02:76:hh:hh:hh:hh   (MurmurHash3 x86_32 of the 16 address bytes,
//                                              seed DIP_MAC_SEED, big-endian)
//
// 02: locally administered (bit 1) and unicast (bit 0 clear) in the first octet; 0x76
// ("v") marks vipmux's range. Distinct IPv4 DIPs always get distinct MACs; two IPv6 DIPs
// (or an IPv6 and an IPv4 DIP) may collide with probability 2^-32 per pair, which the host
// agent refuses at config load for DIPs that share a VNI on one host.
import { parseIp } from "../packet/address.ts";
import { hashBytes } from "./hash.ts";

/** Fixed seed of the IPv6 hash ("dmac"). Fixed forever: changing it re-addresses every IPv6 DIP. */
export const DIP_MAC_SEED = 0x646d6163;
/** First two octets of every DIP MAC. */
export const DIP_MAC_PREFIX: readonly [number, number] = [0x02, 0x76];

/**
 * The inner Ethernet destination for `dip` (text, or 4 / 16 address bytes). Throws a
 * RangeError for anything that is not an IPv4 or IPv6 address. Allocates: call it when a
 * table is built, not per packet.
 */
export function dipMac(dip: string | Uint8Array): Uint8Array {
  const a = typeof dip === "string" ? parseIp(dip) : dip;
  if (a === undefined || (a.length !== 4 && a.length !== 16))
    throw new RangeError(`dipMac: ${String(dip)} is not an IPv4 or IPv6 address`);
  const mac = new Uint8Array(6);
  mac[0] = DIP_MAC_PREFIX[0];
  mac[1] = DIP_MAC_PREFIX[1];
  if (a.length === 4) {
    mac.set(a, 2);
  } else {
    const h = hashBytes(a, DIP_MAC_SEED);
    mac[2] = h >>> 24;
    mac[3] = (h >>> 16) & 0xff;
    mac[4] = (h >>> 8) & 0xff;
    mac[5] = h & 0xff;
  }
  return mac;
}

/** `dipMac` as text, `02:76:0a:0a:01:0c` (lower case, the form nftables and iproute2 print). */
export function dipMacText(dip: string | Uint8Array): string {
  return [...dipMac(dip)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Packet-mark bits that carry the MUX's DIP choice from the netdev ingress chain to the
 * DNAT rules and policy rules: bit 24 says "a DIP was chosen", bits 0-23 are the last
 * three bytes of `dipMac(DIP)` (the IPv4 DIP's last three octets; 24 bits of the IPv6
 * hash). `host.dsr-mark` must not overlap them; two local DIPs of one VNI must not share
 * them (the config loader refuses both).
 */
export const DIP_MARK_MASK = 0x01ffffff;
export const DIP_MARK_FLAG = 0x01000000;

/** The mark (and, for floating IP, the routing table) of a DIP chosen by the MUX. */
export function dipMark(dip: string): number {
  const m = dipMac(dip);
  return (DIP_MARK_FLAG | (m[3]! << 16) | (m[4]! << 8) | m[5]!) >>> 0;
}

/**
 * Second chance (docs/dataplane.md#second-chance): a MUX names a flow's earlier owner by
 * putting `dipMac(owner)` in the inner Ethernet *source*. Anything that names no owner
 * carries this MAC instead: a MUX's own (`DEFAULT_INNER_SRC_MAC`, src/dataplane/engine.ts)
 * and a host's packets passed on to the owner's host (so the chain stops there). No DIP
 * may have it as its `dipMac` (IPv4 109.120.0.2 does; the host agent's config refuses it).
 */
export const NO_OWNER_MAC = "02:76:6d:78:00:02";

/**
 * Mark bit of a packet a host passes on to its earlier owner's host (second chance), with
 * the owner's 24 mark bits beside it (`passMark`). The host agent owns the packet and
 * conntrack mark bits `VIPMUX_MARK_MASK` (the DIP mark and this flag) of flows arriving
 * over VXLAN; `host.dsr-mark` must lie outside them.
 */
export const PASS_MARK_FLAG = 0x02000000;
export const VIPMUX_MARK_MASK = (DIP_MARK_MASK | PASS_MARK_FLAG) >>> 0;

/** The mark of a packet passed on to `dip`'s host: the pass flag and the DIP's 24 bits. */
export function passMark(dip: string): number {
  return (PASS_MARK_FLAG | (dipMark(dip) & 0x00ffffff)) >>> 0;
}
