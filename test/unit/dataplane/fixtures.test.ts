// The forwarder against the shared fixture contract (test/fixtures/packets/forwarder-cases.*):
// every case, step by step, on a fresh forwarder. Before each packet, lookup() (what
// `vipmux flow` answers) must state the expected verdict, backend and reason for it; then
// forward() must do exactly that: the verdict counted once, and for a forwarded packet the
// outer header, VXLAN header and inner Ethernet header read here byte by byte, with the
// input packet behind them unchanged but for the TTL.
import { describe, expect, it } from "vitest";
import { Forwarder, VERDICT_NAMES } from "../../../src/dataplane/forwarder.ts";
import { dipMacText } from "../../../src/lb/dip-mac.ts";
import { buildForwardingTable, type ForwardingTable } from "../../../src/lb/forwarding-table.ts";
import type { ServiceModel } from "../../../src/lb/service.ts";
import { formatIp, formatMac } from "../../../src/packet/address.ts";
import { parseVxlan, VxlanPacket, VxlanStatus } from "../../../src/packet/vxlan.ts";
import {
  type ForwardExpect,
  type ForwarderCase,
  inputBytes,
  loadFixture,
  referenceHash,
  referenceMaglev,
  type Step,
} from "../../fixtures/packets/forwarder-cases.ts";
import { verifyIpv4HeaderChecksum } from "../packet/packets.ts";

const fixture = loadFixture();

function build(name: string, previous?: ForwardingTable): ForwardingTable {
  const model = fixture.models[name];
  if (!model) throw new Error(`no model ${name}`);
  const r = buildForwardingTable(model, previous);
  if (!r.ok) throw new Error(`${name}: ${r.error.join("; ")}`);
  return r.value;
}

type PacketStep = Extract<Step, { input: unknown }>;
type ForwardStep = PacketStep & { expect: ForwardExpect };
const isForward = (s: Step): s is ForwardStep => "input" in s && s.expect.verdict === "forward";

/** Every packet step with the model installed when it runs. */
function packetSteps(): { c: ForwarderCase; s: PacketStep; model: ServiceModel }[] {
  const all: { c: ForwarderCase; s: PacketStep; model: ServiceModel }[] = [];
  for (const c of fixture.cases) {
    let model = fixture.models[c.model]!;
    for (const s of c.steps) {
      if ("table" in s) model = fixture.models[s.table]!;
      else all.push({ c, s, model });
    }
  }
  return all;
}

/** The IP packet's own length (a capture may carry Ethernet padding after it). */
function ipLength(b: Uint8Array): number {
  return b[0]! >> 4 === 4 ? (b[2]! << 8) | b[3]! : 40 + ((b[4]! << 8) | b[5]!);
}

/** RFC 768 / RFC 8200 §8.1: the UDP checksum over the IPv6 pseudo-header verifies. */
function udp6ChecksumOk(out: Uint8Array, len: number): boolean {
  let sum = 17 + (len - 40);
  for (let i = 8; i < 40; i += 2) sum += (out[i]! << 8) | out[i + 1]!;
  for (let i = 40; i < len; i += 2) sum += (out[i]! << 8) | (i + 1 < len ? out[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum === 0xffff;
}

/** Reads the forwarder's output field by field and holds it to `e`. */
function checkOutput(
  where: string,
  out: Uint8Array,
  len: number,
  input: Uint8Array,
  e: ForwardExpect,
  hash: number | undefined,
): void {
  const family = out[0]! >> 4;
  const v6 = family === 6;
  expect(family, where).toBe(e.host.includes(":") ? 6 : 4);
  const alen = v6 ? 16 : 4;
  expect(formatIp(out, v6 ? 8 : 12, alen), `${where}: outer source`).toBe(e.outerSrc);
  expect(formatIp(out, v6 ? 24 : 16, alen), `${where}: outer destination`).toBe(e.host);
  expect(out[v6 ? 6 : 9], `${where}: outer protocol`).toBe(17);
  const udp = v6 ? 40 : 20;
  expect((out[udp + 2]! << 8) | out[udp + 3]!, `${where}: UDP destination port`).toBe(e.udpDstPort);
  const vxlan = udp + 8;
  expect(out[vxlan], `${where}: VXLAN I flag`).toBe(0x08);
  const vni = (out[vxlan + 4]! << 16) | (out[vxlan + 5]! << 8) | out[vxlan + 6]!;
  expect(vni, `${where}: VNI`).toBe(e.vni);
  const eth = vxlan + 8;
  expect(formatMac(out, eth), `${where}: inner destination MAC`).toBe(e.innerDstMac);
  expect(formatMac(out, eth + 6), `${where}: inner source MAC`).toBe(fixture.options.innerSrcMac);
  const inner = out.subarray(eth + 14, len);
  const n = ipLength(input);
  expect((out[eth + 12]! << 8) | out[eth + 13]!, `${where}: EtherType`).toBe(
    input[0]! >> 4 === 4 ? 0x0800 : 0x86dd,
  );
  // The input packet, unchanged but for the TTL / hop limit (and the IPv4 header checksum).
  expect(inner.length, `${where}: inner length`).toBe(n);
  const innerV4 = input[0]! >> 4 === 4;
  const ttlAt = innerV4 ? 8 : 7;
  expect(inner[ttlAt], `${where}: inner TTL`).toBe(input[ttlAt]! - 1);
  for (let i = 0; i < n; i++) {
    if (i === ttlAt || (innerV4 && (i === 10 || i === 11))) continue;
    if (inner[i] !== input[i]) expect.fail(`${where}: inner byte ${i} changed`);
  }
  if (innerV4) expect(verifyIpv4HeaderChecksum(inner), `${where}: inner checksum`).toBe(true);
  // RFC 7348 §5: IPv4 outer UDP checksum 0; IPv6 needs a real one (RFC 8200 §8.1).
  const udpSum = (out[udp + 6]! << 8) | out[udp + 7]!;
  if (v6) expect(udp6ChecksumOk(out, len), `${where}: outer UDP checksum`).toBe(true);
  else expect(udpSum, `${where}: outer UDP checksum`).toBe(0);
  // The codec reads the same packet back (outer IPv4 header checksum included).
  expect(parseVxlan(out, 0, len, new VxlanPacket()), where).toBe(VxlanStatus.ok);
  if (hash !== undefined) {
    const sport = (out[udp]! << 8) | out[udp + 1]!;
    expect(sport, `${where}: VXLAN source port from the flow hash`).toBe(49152 | (hash & 0x3fff));
    if (v6) {
      const label = ((out[1]! & 0x0f) << 16) | (out[2]! << 8) | out[3]!;
      expect(label, `${where}: flow label from the flow hash`).toBe(hash & 0xfffff);
    }
  }
}

function runCase(c: ForwarderCase): void {
  const f = new Forwarder(fixture.options);
  let model = fixture.models[c.model]!;
  let table = build(c.model);
  expect(f.setTable(table).ok).toBe(true);
  let now = 1000;
  c.steps.forEach((s, i) => {
    const where = `step ${i + 1} (${s.description ?? ""})`;
    if ("table" in s) {
      model = fixture.models[s.table]!;
      table = build(s.table, table);
      expect(f.setTable(table).ok, where).toBe(true);
      return;
    }
    now = s.at ?? now + 10;
    const pkt = inputBytes(s.input);
    const copy = pkt.slice();
    const e = s.expect;
    const predicted = f.lookup(pkt, pkt.length, now);
    const counted = Array.from(f.verdicts);
    const v = f.forward(pkt, pkt.length, now);
    expect(pkt, `${where}: the input is not modified`).toEqual(copy);
    expect(VERDICT_NAMES[v], where).toBe(e.verdict);
    expect(predicted.verdict, `${where}: lookup's verdict`).toBe(e.verdict);
    counted[v]!++;
    expect(Array.from(f.verdicts), `${where}: counted once, as ${e.verdict}`).toEqual(counted);
    if (e.verdict !== "forward") {
      expect(predicted.dip, where).toBeNull();
      return;
    }
    const fe = e as ForwardExpect;
    expect(predicted, `${where}: lookup's answer`).toMatchObject({
      service: fe.service,
      dip: fe.dip,
      host: fe.host,
      via: fe.via,
    });
    if (fe.maglev !== undefined) expect(predicted.maglev?.dip ?? null, where).toBe(fe.maglev);
    const hash = fe.hashTuple ? referenceHash(fe.hashTuple, model.seed!) : undefined;
    if (hash !== undefined) expect(predicted.hash, `${where}: flow hash`).toBe(hash);
    expect(table.backendById[f.lastBackendId]?.dip, where).toBe(fe.dip);
    checkOutput(where, f.out, f.outLength, pkt, fe, hash);
    if (fe.entryAfter !== undefined) {
      const after = f.lookup(pkt, pkt.length, now);
      expect(after.entry?.state ?? "none", `${where}: entry after`).toBe(fe.entryAfter);
    }
  });
}

describe("forwarder fixture contract", () => {
  it("states, for every Maglev choice, what the reference computation gives", () => {
    let checked = 0;
    for (const { c, s, model } of packetSteps()) {
      if (!isForward(s)) continue;
      const e = s.expect;
      const where = `${c.description}: ${s.description}`;
      expect(e.innerDstMac, where).toBe(dipMacText(e.dip));
      if (e.via === "maglev" || e.via === "rehash" || e.via === "new-connection")
        expect(e.maglev ?? e.dip, where).toBe(e.dip);
      if (e.hashTuple === undefined || e.maglev === undefined) continue;
      const hash = referenceHash(e.hashTuple, model.seed!);
      expect(referenceMaglev(model, e.service, hash), where).toBe(e.maglev);
      checked++;
    }
    expect(checked).toBeGreaterThan(70);
  });

  it("covers every drop reason a packet can cause and every way of choosing a backend", () => {
    const steps = packetSteps().map((x) => x.s);
    const verdicts = new Set(steps.map((s) => s.expect.verdict));
    for (const name of VERDICT_NAMES) {
      // tooBig depends on the engine's buffer size; noTable on an engine without a table.
      if (name !== "tooBig" && name !== "noTable") expect(verdicts, name).toContain(name);
    }
    const vias = new Set(steps.filter(isForward).map((s) => s.expect.via));
    expect([...vias].sort()).toEqual(["entry", "maglev", "new-connection", "rehash"]);
  });

  for (const c of fixture.cases) it(c.description, () => runCase(c));
});
