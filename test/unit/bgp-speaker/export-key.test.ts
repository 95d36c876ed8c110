// What a peer holds is kept as export keys (adj-rib-out.ts); `exportedRouteOfKey` reads the
// attributes back for `vipmux bgp neighbor ADDR adj-out`: the same route `exportRoute` built.
import { describe, expect, it } from "vitest";
import {
  type ExportContext,
  type ExportPolicy,
  exportedRouteOfKey,
  exportRoute,
  type RouteAttributes,
} from "../../../src/bgp/policy.ts";

const ctx: ExportContext = {
  localAs: 4200000001,
  localAddress: "192.0.2.2",
  nextHop6: "2001:db8::2",
};

describe("exportedRouteOfKey", () => {
  const cases: [string, ExportPolicy, RouteAttributes, 1 | 2, ExportContext?][] = [
    ["plain IPv4", {}, {}, 1],
    ["IPv6 with the speaker's next hop", {}, {}, 2],
    [
      "everything set",
      { med: 7, prepend: 2, communities: ["65000:100"], largeCommunities: ["4200000000:1:2"] },
      {
        origin: "incomplete",
        prepend: 1,
        communities: ["no-export", 42],
        largeCommunities: ["1:2:3"],
        nextHop: "198.51.100.9",
      },
      1,
    ],
    ["IPv6, explicit next hop", { nextHop6: "2001:db8::99", med: 0 }, { origin: "egp" }, 2],
    ["draining (RFC 8326)", {}, { communities: ["65000:1"] }, 1, { ...ctx, drain: { prepend: 3 } }],
  ];
  for (const [what, policy, attrs, afi, c] of cases)
    it(what, () => {
      const route = exportRoute(c ?? ctx, policy, attrs, afi);
      if (typeof route === "string") throw new Error(route);
      expect(exportedRouteOfKey(route.key, (c ?? ctx).localAs)).toEqual(route);
    });

  it("is undefined for text that is no export key (the re-send marker)", () => {
    expect(exportedRouteOfKey("", 65000)).toBeUndefined();
    expect(exportedRouteOfKey("3|0|1|||||", 65000)).toBeUndefined();
  });
});
