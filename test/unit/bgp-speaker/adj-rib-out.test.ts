// Adj-RIB-Out: desired vs sent, coalescing, grouping by attributes, refresh.
import { describe, expect, it } from "vitest";
import { AdjRibOut, type Desired } from "../../../src/bgp/adj-rib-out.ts";
import type { ExportedRoute } from "../../../src/bgp/policy.ts";
import { formatPrefix, parsePrefix } from "../../../src/bgp/wire/index.ts";

const route = (key: string): ExportedRoute => ({ afi: 1, attrs: { origin: 0 }, key });
const both = new Set([1, 2]);

function table(entries: Record<string, string>) {
  return (k: string): Desired | undefined => {
    const r = entries[k];
    return r === undefined ? undefined : { prefix: parsePrefix(k)!, route: route(r) };
  };
}
const names = (ps: { afi: number }[]) => ps.map((p) => formatPrefix(p as never)).sort();

describe("AdjRibOut", () => {
  it("sends only differences and groups announcements by attributes", () => {
    const out = new AdjRibOut();
    const want: Record<string, string> = {
      "10.0.0.1/32": "A",
      "10.0.0.2/32": "A",
      "10.0.0.3/32": "B",
    };
    out.reset(Object.keys(want));
    const b = out.take(100, table(want), both);
    expect(b.count).toBe(3);
    expect([...b.announce.keys()].sort()).toEqual(["A", "B"]);
    expect(names(b.announce.get("A")!.prefixes)).toEqual(["10.0.0.1/32", "10.0.0.2/32"]);
    // Nothing changed: marking dirty sends nothing.
    out.markDirty("10.0.0.1/32");
    expect(out.take(100, table(want), both).count).toBe(0);
  });

  it("announce then withdraw before a take sends nothing; withdraw of a sent prefix is sent", () => {
    const out = new AdjRibOut();
    out.markDirty("10.0.0.9/32");
    expect(out.take(100, table({}), both).count).toBe(0);
    out.markDirty("10.0.0.1/32");
    out.take(100, table({ "10.0.0.1/32": "A" }), both);
    out.markDirty("10.0.0.1/32");
    const b = out.take(100, table({}), both);
    expect(names(b.withdraw4)).toEqual(["10.0.0.1/32"]);
    expect(out.sent.size).toBe(0);
  });

  it("route refresh re-announces everything and keeps pending withdrawals", () => {
    const out = new AdjRibOut();
    const want: Record<string, string> = { "10.0.0.1/32": "A", "10.0.0.2/32": "A" };
    out.reset(Object.keys(want));
    out.take(100, table(want), both);
    delete want["10.0.0.2/32"];
    out.markDirty("10.0.0.2/32"); // withdrawal pending when the refresh arrives
    out.resend(1, Object.keys(want));
    const b = out.take(100, table(want), both);
    expect(names(b.announce.get("A")!.prefixes)).toEqual(["10.0.0.1/32"]);
    expect(names(b.withdraw4)).toEqual(["10.0.0.2/32"]);
  });

  it("takes at most `max` prefixes per batch; families not negotiated are not sent", () => {
    const out = new AdjRibOut();
    const want: Record<string, string> = {};
    for (let i = 0; i < 10; i++) want[`10.0.0.${i}/32`] = "A";
    want["2001:db8::1/128"] = "A";
    out.reset(Object.keys(want));
    expect(out.take(4, table(want), new Set([1])).count).toBe(4);
    expect(out.dirty.size).toBe(7);
    let n = 0;
    while (out.dirty.size > 0) n += out.take(4, table(want), new Set([1])).count;
    expect(n).toBe(6);
    expect(out.sentCount(2)).toBe(0);
  });
});
