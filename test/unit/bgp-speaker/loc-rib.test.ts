// The speaker's Loc-RIB on its own: canonical prefix keys, interned attribute sets, and
// compaction that renumbers the sets without changing any route's attributes.
import { describe, expect, it } from "vitest";
import { keyPrefix, LocRib, prefixKey } from "../../../src/bgp/loc-rib.ts";
import { formatPrefix } from "../../../src/bgp/wire/index.ts";

describe("prefix keys", () => {
  it("are the canonical text; a bare address is a host route", () => {
    expect(prefixKey("20.20.20.100").key).toBe("20.20.20.100/32");
    expect(prefixKey("2001:DB8:0::1").key).toBe("2001:db8::1/128");
    expect(prefixKey("10.1.0.0/16").key).toBe("10.1.0.0/16");
    expect(() => prefixKey("10.1.0.1/16")).toThrow(TypeError);
  });

  it("give back their prefix", () => {
    for (const t of ["0.0.0.0/0", "10.1.0.0/16", "255.255.255.255/32", "2001:db8::/32"]) {
      const { key, prefix } = prefixKey(t);
      expect(keyPrefix(key)).toEqual(prefix);
      expect(formatPrefix(keyPrefix(key))).toBe(key);
    }
  });
});

describe("LocRib", () => {
  it("interns attribute sets by content, whatever the key order", () => {
    const rib = new LocRib(() => {});
    expect(rib.set("10.0.0.1/32", { med: 5, origin: "igp" })).toBe(true);
    expect(rib.set("10.0.0.1/32", { origin: "igp", med: 5 })).toBe(false);
    expect(rib.set("10.0.0.2/32", { origin: "igp", med: 5 })).toBe(true);
    expect(rib.get("10.0.0.1/32")).toBe(rib.get("10.0.0.2/32"));
    expect(rib.attributeSets).toBe(1);
    expect(rib.delete("10.0.0.2/32")).toBe(true);
    expect(rib.delete("10.0.0.2/32")).toBe(false);
    expect([...rib.keys()]).toEqual(["10.0.0.1/32"]);
  });

  it("drops unused sets once they have doubled, renumbering the live ones", () => {
    let renumbered = 0;
    const rib = new LocRib(() => renumbered++);
    rib.set("10.0.0.1/32", { med: 1 });
    for (let i = 0; i < 1100; i++) rib.set("10.0.0.2/32", { med: 1000 + i });
    expect(renumbered).toBe(1);
    expect(rib.attributeSets).toBeLessThan(1100);
    expect(rib.attrs(rib.get("10.0.0.1/32")!)).toEqual({ med: 1 });
    expect(rib.attrs(rib.get("10.0.0.2/32")!)).toEqual({ med: 2099 });
    // A live set is found again after the renumbering.
    expect(rib.set("10.0.0.3/32", { med: 1 })).toBe(true);
    expect(rib.get("10.0.0.3/32")).toBe(rib.get("10.0.0.1/32"));
  });
});
