// RFC 7606 §7 attribute by attribute, plus the RFC 4271 §6 header/OPEN/NLRI checks: each
// malformed input must produce exactly the specified outcome.

import { describe, expect, it } from "vitest";
import { contextWith, defaultContext } from "../../../src/bgp/wire/context.ts";
import { Framer } from "../../../src/bgp/wire/framer.ts";
import { decodeMessage } from "../../../src/bgp/wire/message.ts";
import { decodeNotification } from "../../../src/bgp/wire/notification.ts";
import { decodeOpen } from "../../../src/bgp/wire/open.ts";
import { prefixesToStrings } from "../../../src/bgp/wire/prefix.ts";
import { type DecodedUpdate, decodeUpdate, routeChanges } from "../../../src/bgp/wire/update.ts";

const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ""), "hex"));

/** One attribute with 1-octet length (or 2 with the 0x10 flag). */
function attr(flags: number, code: number, value: number[] | Uint8Array): number[] {
  const v = [...value];
  return flags & 0x10
    ? [flags, code, v.length >> 8, v.length & 255, ...v]
    : [flags, code, v.length, ...v];
}

const ORIGIN = attr(0x40, 1, [0]);
const AS_PATH = attr(0x40, 2, [2, 1, 0, 0, 0xfd, 0xe8]); // AS_SEQUENCE 65000 (4-octet)
const NEXT_HOP = attr(0x40, 3, [192, 0, 2, 1]);
const NLRI = [24, 10, 0, 0]; // 10.0.0.0/24
const MANDATORY = [...ORIGIN, ...AS_PATH, ...NEXT_HOP];

function body(attrs: number[], nlri: number[] = NLRI, withdrawn: number[] = []): Uint8Array {
  return Uint8Array.from([
    withdrawn.length >> 8,
    withdrawn.length & 255,
    ...withdrawn,
    attrs.length >> 8,
    attrs.length & 255,
    ...attrs,
    ...nlri,
  ]);
}

function ok(b: Uint8Array, ctx = defaultContext): DecodedUpdate {
  const r = decodeUpdate(b, ctx);
  if (!r.ok) throw new Error(`unexpected session reset: ${r.error.reason}`);
  return r.value;
}

function reset(b: Uint8Array, ctx = defaultContext) {
  const r = decodeUpdate(b, ctx);
  if (r.ok)
    throw new Error(`expected a session reset, got issues ${JSON.stringify(r.value.issues)}`);
  return r.error;
}

/** Asserts the UPDATE decodes with exactly one issue of `action` on `code`. */
function expectIssue(
  b: Uint8Array,
  action: "treat-as-withdraw" | "attribute-discard",
  code: number,
  ctx = defaultContext,
): DecodedUpdate {
  const u = ok(b, ctx);
  expect(u.issues.map((i) => [i.action, i.attrCode])).toEqual([[action, code]]);
  expect(u.issues[0]!.reason.length).toBeGreaterThan(5);
  expect(u.treatAsWithdraw).toBe(action === "treat-as-withdraw");
  return u;
}

describe("a well-formed baseline", () => {
  it("decodes cleanly", () => {
    const u = ok(body(MANDATORY));
    expect(u.issues).toEqual([]);
    expect(prefixesToStrings(u.nlri)).toEqual(["10.0.0.0/24"]);
    expect(routeChanges(u).announced.map(prefixesToStrings)).toEqual([["10.0.0.0/24"]]);
  });
});

describe("RFC 7606 §7.1 ORIGIN", () => {
  it("length other than 1: treat-as-withdraw", () => {
    expectIssue(body([...attr(0x40, 1, [0, 0]), ...AS_PATH, ...NEXT_HOP]), "treat-as-withdraw", 1);
  });
  it("undefined value: treat-as-withdraw", () => {
    const u = expectIssue(
      body([...attr(0x40, 1, [3]), ...AS_PATH, ...NEXT_HOP]),
      "treat-as-withdraw",
      1,
    );
    expect(routeChanges(u).announced).toEqual([]);
    expect(routeChanges(u).withdrawn.map(prefixesToStrings)).toEqual([["10.0.0.0/24"]]);
  });
  it("Optional bit set (flags conflict, §3.c): treat-as-withdraw", () => {
    expectIssue(body([...attr(0xc0, 1, [0]), ...AS_PATH, ...NEXT_HOP]), "treat-as-withdraw", 1);
  });
  it("missing (§3.d): treat-as-withdraw", () => {
    expectIssue(body([...AS_PATH, ...NEXT_HOP]), "treat-as-withdraw", 1);
  });
  it("duplicate (§3.g): all but the first discarded", () => {
    const u = expectIssue(
      body([...ORIGIN, ...attr(0x40, 1, [2]), ...AS_PATH, ...NEXT_HOP]),
      "attribute-discard",
      1,
    );
    expect(u.attrs.origin).toBe(0);
  });
});

describe("RFC 7606 §7.2 AS_PATH", () => {
  it("segment overruns the attribute: treat-as-withdraw", () => {
    expectIssue(
      body([...ORIGIN, ...attr(0x40, 2, [2, 2, 0, 0, 0xfd, 0xe8]), ...NEXT_HOP]),
      "treat-as-withdraw",
      2,
    );
  });
  it("unknown segment type: treat-as-withdraw", () => {
    expectIssue(
      body([...ORIGIN, ...attr(0x40, 2, [5, 1, 0, 0, 0xfd, 0xe8]), ...NEXT_HOP]),
      "treat-as-withdraw",
      2,
    );
  });
  it("zero-length segment: treat-as-withdraw", () => {
    expectIssue(body([...ORIGIN, ...attr(0x40, 2, [2, 0]), ...NEXT_HOP]), "treat-as-withdraw", 2);
  });
  it("trailing octet after the last segment: treat-as-withdraw", () => {
    expectIssue(
      body([...ORIGIN, ...attr(0x40, 2, [2, 1, 0, 0, 0xfd, 0xe8, 7]), ...NEXT_HOP]),
      "treat-as-withdraw",
      2,
    );
  });
  it("2-octet encoding on a 4-octet session misparses: treat-as-withdraw", () => {
    expectIssue(
      body([...ORIGIN, ...attr(0x40, 2, [2, 3, 0, 1, 0, 2, 0, 3]), ...NEXT_HOP]),
      "treat-as-withdraw",
      2,
    );
  });
  it("confederation segment from an external peer: treat-as-withdraw; accepted internally", () => {
    const b = body([
      ...ORIGIN,
      ...attr(0x40, 2, [3, 1, 0, 0, 0xfd, 0xe9]),
      ...NEXT_HOP,
      ...attr(0x40, 5, [0, 0, 0, 100]),
    ]);
    // eBGP: the confed segment is an error, and LOCAL_PREF is discarded (§7.5).
    const u = ok(b);
    expect(u.issues.map((i) => [i.action, i.attrCode])).toEqual([
      ["treat-as-withdraw", 2],
      ["attribute-discard", 5],
    ]);
    expect(ok(b, contextWith({ ibgp: true })).issues).toEqual([]);
  });
  it("missing: treat-as-withdraw", () => {
    expectIssue(body([...ORIGIN, ...NEXT_HOP]), "treat-as-withdraw", 2);
  });
  it("flags with Optional set: treat-as-withdraw", () => {
    expectIssue(
      body([...ORIGIN, ...attr(0xc0, 2, [2, 1, 0, 0, 0xfd, 0xe8]), ...NEXT_HOP]),
      "treat-as-withdraw",
      2,
    );
  });
});

describe("RFC 7606 §7.3 NEXT_HOP", () => {
  it("length other than 4: treat-as-withdraw", () => {
    expectIssue(
      body([...ORIGIN, ...AS_PATH, ...attr(0x40, 3, [1, 2, 3, 4, 5])]),
      "treat-as-withdraw",
      3,
    );
  });
  it.each([
    ["0.0.0.0", [0, 0, 0, 0]],
    ["127.0.0.1", [127, 0, 0, 1]],
    ["224.0.0.5", [224, 0, 0, 5]],
    ["255.255.255.255", [255, 255, 255, 255]],
  ])("semantically invalid %s: treat-as-withdraw", (_name, nh) => {
    expectIssue(body([...ORIGIN, ...AS_PATH, ...attr(0x40, 3, nh)]), "treat-as-withdraw", 3);
  });
  it("missing with IPv4 NLRI: treat-as-withdraw", () => {
    expectIssue(body([...ORIGIN, ...AS_PATH]), "treat-as-withdraw", 3);
  });
  it("not required when the routes are in MP_REACH_NLRI (RFC 4760 §3)", () => {
    const mp = attr(0x90, 14, [
      0,
      2,
      1,
      16,
      ...new Array(15).fill(0),
      1,
      0,
      128,
      ...new Array(16).fill(0x20),
    ]);
    expect(ok(body([...mp, ...ORIGIN, ...AS_PATH], [])).issues).toEqual([]);
  });
});

describe("RFC 7606 §7.4 MULTI_EXIT_DISC", () => {
  it("length other than 4: treat-as-withdraw", () => {
    expectIssue(body([...MANDATORY, ...attr(0x80, 4, [0, 0, 1])]), "treat-as-withdraw", 4);
  });
  it("Optional bit clear: treat-as-withdraw", () => {
    expectIssue(body([...MANDATORY, ...attr(0x40, 4, [0, 0, 0, 1])]), "treat-as-withdraw", 4);
  });
});

describe("RFC 7606 §7.5 LOCAL_PREF", () => {
  const ibgp = contextWith({ ibgp: true });
  it("from an external peer: discarded", () => {
    const u = expectIssue(
      body([...MANDATORY, ...attr(0x40, 5, [0, 0, 0, 100])]),
      "attribute-discard",
      5,
    );
    expect(u.attrs.localPref).toBeUndefined();
  });
  it("from an internal peer: kept", () => {
    expect(ok(body([...MANDATORY, ...attr(0x40, 5, [0, 0, 0, 100])]), ibgp).attrs.localPref).toBe(
      100,
    );
  });
  it("length other than 4: treat-as-withdraw", () => {
    expectIssue(body([...MANDATORY, ...attr(0x40, 5, [0, 100])]), "treat-as-withdraw", 5, ibgp);
  });
  it("missing on an internal session: treat-as-withdraw", () => {
    expectIssue(body(MANDATORY), "treat-as-withdraw", 5, ibgp);
  });
});

describe("RFC 7606 §7.6 ATOMIC_AGGREGATE", () => {
  it("length other than 0: attribute-discard", () => {
    const u = expectIssue(body([...MANDATORY, ...attr(0x40, 6, [1])]), "attribute-discard", 6);
    expect(u.attrs.atomicAggregate).toBeUndefined();
  });
  it("Optional bit set: attribute-discard", () => {
    expectIssue(body([...MANDATORY, ...attr(0xc0, 6, [])]), "attribute-discard", 6);
  });
});

describe("RFC 7606 §7.7 AGGREGATOR", () => {
  it("length other than 8 on a 4-octet session: attribute-discard", () => {
    const u = expectIssue(
      body([...MANDATORY, ...attr(0xc0, 7, [0, 0, 1, 192, 0, 2, 1])]),
      "attribute-discard",
      7,
    );
    expect(u.attrs.aggregator).toBeUndefined();
  });
  it("length 6 on a 2-octet session is right", () => {
    const as2 = contextWith({ as4: false });
    const b = body([
      ...ORIGIN,
      ...attr(0x40, 2, [2, 1, 0xfd, 0xe8]),
      ...NEXT_HOP,
      ...attr(0xc0, 7, [0, 1, 192, 0, 2, 1]),
    ]);
    expect(ok(b, as2).attrs.aggregator).toEqual({ asn: 1, address: 0xc0000201 });
  });
  it("Transitive bit clear: attribute-discard", () => {
    expectIssue(
      body([...MANDATORY, ...attr(0x80, 7, [0, 0, 0, 1, 192, 0, 2, 1])]),
      "attribute-discard",
      7,
    );
  });
});

describe("RFC 7606 §7.8 COMMUNITIES, §7.9 ORIGINATOR_ID, §7.10 CLUSTER_LIST, §7.14 extended, RFC 8092 large", () => {
  it.each([
    ["COMMUNITIES length 0", 0xc0, 8, []],
    ["COMMUNITIES length 5", 0xc0, 8, [0, 0, 0, 1, 2]],
    ["COMMUNITIES not optional", 0x40, 8, [0, 0, 0, 1]],
    ["ORIGINATOR_ID length 5", 0x80, 9, [1, 2, 3, 4, 5]],
    ["CLUSTER_LIST length 6", 0x80, 10, [1, 2, 3, 4, 5, 6]],
    ["CLUSTER_LIST length 0", 0x80, 10, []],
    ["EXTENDED_COMMUNITIES length 9", 0xc0, 16, [0, 2, 0, 1, 0, 0, 0, 1, 9]],
    ["EXTENDED_COMMUNITIES length 0", 0xc0, 16, []],
    ["LARGE_COMMUNITY length 13", 0xc0, 32, new Array(13).fill(1)],
    ["LARGE_COMMUNITY length 0", 0xc0, 32, []],
    ["LARGE_COMMUNITY non-transitive", 0x80, 32, new Array(12).fill(1)],
  ])("%s: treat-as-withdraw", (_name, flags, code, value) => {
    expectIssue(
      body([...MANDATORY, ...attr(flags as number, code as number, value as number[])]),
      "treat-as-withdraw",
      code as number,
    );
  });
  it("well-formed values decode", () => {
    const u = ok(
      body([
        ...MANDATORY,
        ...attr(0xc0, 8, [0xfd, 0xe8, 0, 100]),
        ...attr(0xc0, 16, [0, 2, 0xfd, 0xe8, 0, 0, 0, 7]),
        ...attr(0xc0, 32, [0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2]),
      ]),
    );
    expect(u.attrs.communities).toEqual([0xfde80064]);
    expect(u.attrs.extendedCommunities).toEqual([0x0002fde800000007n]);
    expect(u.attrs.largeCommunities).toEqual([[65000, 1, 2]]);
  });
  it("a duplicate COMMUNITIES is discarded, the first kept (§3.g)", () => {
    const u = expectIssue(
      body([...MANDATORY, ...attr(0xc0, 8, [0, 0, 0, 1]), ...attr(0xc0, 8, [0, 0, 0, 2])]),
      "attribute-discard",
      8,
    );
    expect(u.attrs.communities).toEqual([1]);
  });
});

describe("RFC 7606 §7.11 MP_REACH_NLRI and §7.12 MP_UNREACH_NLRI: session reset", () => {
  const v6reach = (nhLen: number, rest: number[]) => [
    0,
    2,
    1,
    nhLen,
    ...new Array(nhLen).fill(0x20),
    0,
    ...rest,
  ];
  it("bad next-hop length for IPv6: Optional Attribute Error with the attribute as data", () => {
    const a = attr(0x90, 14, v6reach(20, [64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0]));
    const e = reset(body([...a, ...ORIGIN, ...AS_PATH], []));
    expect([e.code, e.subcode]).toEqual([3, 9]);
    expect([...e.data]).toEqual(a);
  });
  it("prefix length above 128: session reset", () => {
    const e = reset(
      body(
        [...attr(0x90, 14, v6reach(16, [129, ...new Array(17).fill(0)])), ...ORIGIN, ...AS_PATH],
        [],
      ),
    );
    expect([e.code, e.subcode]).toEqual([3, 9]);
  });
  it("NLRI overrunning the attribute: session reset", () => {
    const e = reset(
      body([...attr(0x90, 14, v6reach(16, [64, 0x20, 1])), ...ORIGIN, ...AS_PATH], []),
    );
    expect([e.code, e.subcode]).toEqual([3, 9]);
  });
  it("too short: session reset", () => {
    expect(reset(body([...attr(0x80, 14, [0, 2, 1]), ...ORIGIN, ...AS_PATH], [])).subcode).toBe(9);
    expect(reset(body([...attr(0x80, 15, [0, 2])], [])).subcode).toBe(9);
  });
  it("Transitive bit set: Attribute Flags Error with the attribute as data", () => {
    const a = attr(0xc0, 15, [0, 2, 1]);
    const e = reset(body(a, []));
    expect([e.code, e.subcode, [...e.data]]).toEqual([3, 4, a]);
  });
  it("MP_UNREACH_NLRI withdrawn overrun: session reset", () => {
    expect(reset(body(attr(0x80, 15, [0, 2, 1, 64, 0x20]), [])).subcode).toBe(9);
  });
  it("appearing twice: Malformed Attribute List", () => {
    const a = attr(0x80, 15, [0, 2, 1]);
    const e = reset(body([...a, ...a], []));
    expect([e.code, e.subcode]).toEqual([3, 1]);
  });
  it("an IPv6 next hop for IPv4 NLRI needs RFC 8950 negotiated", () => {
    const a = attr(0x90, 14, [0, 1, 1, 16, ...new Array(16).fill(0x20), 0, 32, 10, 0, 0, 1]);
    expect(reset(body([...a, ...ORIGIN, ...AS_PATH], [])).subcode).toBe(9);
    expect(
      ok(body([...a, ...ORIGIN, ...AS_PATH], []), contextWith({ extendedNextHop: true })).issues,
    ).toEqual([]);
  });
  it("an unsupported AFI/SAFI is dropped and reported, not fatal", () => {
    const a = attr(0x80, 14, [0, 25, 70, 4, 1, 2, 3, 4, 0, 1, 2, 3]);
    expectIssue(body([...a, ...ORIGIN, ...AS_PATH], []), "attribute-discard", 14);
  });
});

describe("RFC 6793 AS4_PATH / AS4_AGGREGATOR", () => {
  const as2 = contextWith({ as4: false });
  const path2 = attr(0x40, 2, [2, 3, 0xfd, 0xe8, 0x5b, 0xa0, 0x5b, 0xa0]); // 65000 23456 23456
  it("reconciles AS_TRANS with AS4_PATH", () => {
    const as4 = attr(0xc0, 17, [2, 2, 0, 1, 0, 0, 0, 2, 0, 0]); // 65536 131072
    const u = ok(body([...ORIGIN, ...path2, ...NEXT_HOP, ...as4]), as2);
    expect(u.issues).toEqual([]);
    expect(u.attrs.asPath).toEqual([{ type: 2, asns: [65000, 65536, 131072] }]);
  });
  it("malformed AS4_PATH on a 2-octet session: attribute-discard, AS_PATH used as is", () => {
    const u = expectIssue(
      body([...ORIGIN, ...path2, ...NEXT_HOP, ...attr(0xc0, 17, [2, 2, 0, 1])]),
      "attribute-discard",
      17,
      as2,
    );
    expect(u.attrs.asPath).toEqual([{ type: 2, asns: [65000, 23456, 23456] }]);
  });
  it("AS4_PATH with a confederation segment: attribute-discard", () => {
    expectIssue(
      body([...ORIGIN, ...path2, ...NEXT_HOP, ...attr(0xc0, 17, [3, 1, 0, 1, 0, 0])]),
      "attribute-discard",
      17,
      as2,
    );
  });
  it("AS4_PATH longer than AS_PATH is ignored", () => {
    const as4 = attr(0xc0, 17, [2, 4, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
    expectIssue(body([...ORIGIN, ...path2, ...NEXT_HOP, ...as4]), "attribute-discard", 17, as2);
  });
  it("AS4 attributes on a 4-octet session: attribute-discard", () => {
    expectIssue(
      body([...MANDATORY, ...attr(0xc0, 17, [2, 1, 0, 1, 0, 0])]),
      "attribute-discard",
      17,
    );
    expectIssue(
      body([...MANDATORY, ...attr(0xc0, 18, [0, 1, 0, 0, 1, 2, 3, 4])]),
      "attribute-discard",
      18,
    );
  });
  it("AS4_AGGREGATOR of the wrong length: attribute-discard", () => {
    expectIssue(
      body([
        ...ORIGIN,
        ...path2,
        ...NEXT_HOP,
        ...attr(0xc0, 7, [0x5b, 0xa0, 1, 2, 3, 4]),
        ...attr(0xc0, 18, [0, 1, 0, 0, 1, 2]),
      ]),
      "attribute-discard",
      18,
      as2,
    );
  });
  it("AGGREGATOR other than AS_TRANS voids AS4_PATH and AS4_AGGREGATOR (§4.2.3)", () => {
    const u = expectIssue(
      body([
        ...ORIGIN,
        ...path2,
        ...NEXT_HOP,
        ...attr(0xc0, 7, [0, 9, 1, 2, 3, 4]),
        ...attr(0xc0, 17, [2, 2, 0, 1, 0, 0, 0, 2, 0, 0]),
      ]),
      "attribute-discard",
      17,
      as2,
    );
    expect(u.attrs.asPath).toEqual([{ type: 2, asns: [65000, 23456, 23456] }]);
    expect(u.attrs.aggregator).toEqual({ asn: 9, address: 0x01020304 });
  });
  it("AGGREGATOR AS_TRANS takes the AS4_AGGREGATOR value", () => {
    const u = ok(
      body([
        ...ORIGIN,
        ...path2,
        ...NEXT_HOP,
        ...attr(0xc0, 7, [0x5b, 0xa0, 1, 2, 3, 4]),
        ...attr(0xc0, 18, [0, 1, 0, 0, 1, 2, 3, 4]),
      ]),
      as2,
    );
    expect(u.attrs.aggregator).toEqual({ asn: 65536, address: 0x01020304 });
  });
});

describe("unknown attributes (RFC 4271 §5, §6.3)", () => {
  it("unrecognized well-known: session reset 3/2 with the attribute as data", () => {
    const a = attr(0x40, 99, [1, 2]);
    const e = reset(body([...MANDATORY, ...a]));
    expect([e.code, e.subcode, [...e.data]]).toEqual([3, 2, a]);
  });
  it("unknown optional non-transitive: quietly ignored", () => {
    const u = ok(body([...MANDATORY, ...attr(0x80, 99, [1, 2])]));
    expect(u.issues).toEqual([]);
    expect(u.attrs.unknown).toBeUndefined();
  });
  it("unknown optional transitive: kept with the Partial bit set", () => {
    const u = ok(body([...MANDATORY, ...attr(0xc0, 99, [1, 2])]));
    expect(u.attrs.unknown).toEqual([{ flags: 0xe0, code: 99, value: Uint8Array.of(1, 2) }]);
  });
});

describe("RFC 7606 §4 attribute and NLRI lengths", () => {
  it("an attribute overrunning the attribute field: Malformed Attribute List when MP NLRI may be hidden", () => {
    const attrs = [...MANDATORY, 0xc0, 8, 10, 0, 0];
    const e = reset(body(attrs, []));
    expect([e.code, e.subcode]).toEqual([3, 1]);
  });
  it("an overrun after the MP attribute was parsed: treat-as-withdraw", () => {
    const mp = attr(0x80, 15, [0, 2, 1, 64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0]);
    const u = expectIssue(body([...mp, ...ORIGIN, 0x40, 2, 9, 2]), "treat-as-withdraw", 2);
    expect(routeChanges(u).withdrawn.map(prefixesToStrings)).toEqual([
      ["2001:db8::/64"],
      ["10.0.0.0/24"],
    ]);
  });
  it("a truncated attribute header: Malformed Attribute List", () => {
    expect(reset(body([...MANDATORY, 0xc0], [])).subcode).toBe(1);
  });
  it("withdrawn routes length beyond the message: Malformed Attribute List", () => {
    expect(reset(Uint8Array.of(0, 50, 0, 0)).subcode).toBe(1);
  });
  it("total path attribute length beyond the message: Malformed Attribute List", () => {
    expect(reset(Uint8Array.of(0, 0, 0, 50, 0x40, 1, 1, 0)).subcode).toBe(1);
  });
  it.each([
    ["NLRI prefix length 33", body(MANDATORY, [33, 10, 0, 0, 0, 0])],
    ["NLRI prefix overruns the message", body(MANDATORY, [24, 10, 0])],
    ["withdrawn prefix length 40", body([], [], [40, 1, 2, 3, 4, 5])],
    ["withdrawn prefix overrun", body([], [], [32, 1, 2])],
  ])("%s: Invalid Network Field", (_name, b) => {
    const e = reset(b);
    expect([e.code, e.subcode]).toEqual([3, 10]);
  });
  it("add-path: a truncated path identifier is an Invalid Network Field", () => {
    const ctx = contextWith({ addPath: { ipv4: true, ipv6: false } });
    expect(reset(body(MANDATORY, [0, 0, 0]), ctx).subcode).toBe(10);
    expect(prefixesToStrings(ok(body(MANDATORY, [0, 0, 0, 7, 24, 10, 0, 0]), ctx).nlri)).toEqual([
      "10.0.0.0/24",
    ]);
  });
});

describe("RFC 4271 §6.1 message header", () => {
  const header = (len: number, type: number, marker = 0xff) =>
    Uint8Array.from([
      ...new Array(16).fill(marker),
      len >> 8,
      len & 255,
      type,
      ...new Array(Math.max(0, len - 19)).fill(0),
    ]);
  const first = (bytes: Uint8Array, max = 4096) => {
    const f = new Framer(max);
    f.push(bytes);
    return f.next();
  };
  it.each([
    ["bad marker", header(19, 4, 0), 1, 1, []],
    ["length 18", header(18, 4), 1, 2, [0, 18]],
    ["length 4097", header(4097, 2), 1, 2, [0x10, 0x01]],
    ["KEEPALIVE of 20", header(20, 4), 1, 2, [0, 20]],
    ["OPEN of 28", header(28, 1), 1, 2, [0, 28]],
    ["UPDATE of 22", header(22, 2), 1, 2, [0, 22]],
    ["NOTIFICATION of 20", header(20, 3), 1, 2, [0, 20]],
    ["type 9", header(19, 9), 1, 3, [9]],
    ["type 0", header(19, 0), 1, 3, [0]],
  ])("%s", (_name, bytes, code, subcode, data) => {
    const r = first(bytes);
    expect(r?.ok).toBe(false);
    if (r && !r.ok)
      expect([r.error.code, r.error.subcode, [...r.error.data]]).toEqual([code, subcode, data]);
    const d = decodeMessage(bytes, defaultContext);
    expect(!d.ok && [d.error.code, d.error.subcode]).toEqual([code, subcode]);
  });
  it("the framer stays failed after an error", () => {
    const f = new Framer();
    f.push(header(19, 9));
    expect(f.next()?.ok).toBe(false);
    expect(f.next()?.ok).toBe(false);
  });
  it("accepts 4097..65535 only when extended messages are negotiated (RFC 8654)", () => {
    const big = body(
      MANDATORY,
      new Array(5000).fill(0).flatMap(() => [0]),
    );
    const msg = Uint8Array.from([
      ...new Array(16).fill(0xff),
      (big.length + 19) >> 8,
      (big.length + 19) & 255,
      2,
      ...big,
    ]);
    expect(first(msg)?.ok).toBe(false);
    expect(first(msg, 65535)?.ok).toBe(true);
  });
  it("waits for more bytes instead of reading past the end", () => {
    const f = new Framer();
    f.push(header(30, 2).subarray(0, 25));
    expect(f.next()).toBeUndefined();
  });
});

describe("RFC 4271 §6.2 OPEN", () => {
  const open = (h: string) => decodeOpen(hex(h));
  const expectOpenError = (h: string, subcode: number, data: number[] = []) => {
    const r = open(h);
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect([r.error.code, r.error.subcode, [...r.error.data]]).toEqual([2, subcode, data]);
  };
  it("unsupported version: data is the highest supported version", () =>
    expectOpenError("03 fde8 005a 0a000001 00", 1, [0, 4]));
  it("hold time 1 or 2: Unacceptable Hold Time", () => {
    expectOpenError("04 fde8 0001 0a000001 00", 6);
    expectOpenError("04 fde8 0002 0a000001 00", 6);
  });
  it("BGP identifier 0: Bad BGP Identifier", () => expectOpenError("04 fde8 005a 00000000 00", 3));
  it("optional parameter other than capabilities: Unsupported Optional Parameter", () =>
    expectOpenError("04 fde8 005a 0a000001 04 01 02 0000", 4));
  it("optional parameters length not matching the message", () =>
    expectOpenError("04 fde8 005a 0a000001 05 02 02 0200", 0));
  it("capability overrunning its parameter", () =>
    expectOpenError("04 fde8 005a 0a000001 04 02 02 0105", 0));
  it("malformed multiprotocol capability length", () =>
    expectOpenError("04 fde8 005a 0a000001 05 02 03 010100", 0));
  it("truncated RFC 9072 extended length", () =>
    expectOpenError("04 fde8 005a 0a000001 ff ff 00", 0));
  it("unknown capabilities are kept and reported", () => {
    const r = open("04 fde8 005a 0a000001 09 02 07 4700 8003 aabbcc");
    expect(r.ok && r.value.capabilities).toEqual([
      { kind: "unknown", code: 0x47, value: new Uint8Array(0) },
      { kind: "unknown", code: 0x80, value: Uint8Array.of(0xaa, 0xbb, 0xcc) },
    ]);
  });
});

describe("ROUTE-REFRESH and NOTIFICATION", () => {
  it("ROUTE-REFRESH of the wrong length: RFC 7313 §5 error with the whole message", () => {
    const msg = Uint8Array.from([...new Array(16).fill(0xff), 0, 24, 5, 0, 1, 0, 1, 0]);
    const r = decodeMessage(msg, defaultContext);
    expect(!r.ok && [r.error.code, r.error.subcode, [...r.error.data]]).toEqual([7, 1, [...msg]]);
  });
  it("a shutdown communication that is not UTF-8 is reported, the NOTIFICATION kept", () => {
    const n = decodeNotification(Uint8Array.of(6, 2, 2, 0xc3, 0x28));
    expect([n.code, n.subcode, n.communication, n.communicationError]).toEqual([
      6,
      2,
      undefined,
      "shutdown communication is not valid UTF-8",
    ]);
  });
  it("a shutdown communication length overrunning the data is reported", () => {
    const n = decodeNotification(Uint8Array.of(6, 4, 10, 0x41));
    expect(n.communicationError).toMatch(/overruns/);
  });
  it("other Cease subcodes carry no communication", () => {
    expect(decodeNotification(Uint8Array.of(6, 3, 1, 0x41)).communication).toBeUndefined();
  });
});
