// vipmux with an FRR edge in the `traditional` profile (RFC 8212: policy required), and a
// graceful-shutdown drain (RFC 8326) that FRR honours with LOCAL_PREF 0 before the withdraw.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fibNextHops, pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import {
  bgpFixture,
  type SpeakerHandle,
  startSpeaker,
  waitEstablished,
} from "../fixtures/bgp-lab/control.ts";
import { isRoot } from "./helpers.ts";

const V4 = "20.20.20.100/32";
const V6 = "2001:db8:f::100/128";

interface PathJson {
  peer: { peerId: string };
  locPrf?: number;
  community?: { list: string[] };
  bestpath?: { overall: boolean };
  multipath?: boolean;
}

const mux = (n: 1 | 2) => ({
  asn: 65100 + n,
  routerId: n === 1 ? "192.0.2.2" : "192.0.2.6",
  nextHop6: `2001:db8:0:${n}::2`,
  holdTimeSec: 9,
  idleHoldMs: 300,
  peers: [
    {
      address: n === 1 ? "192.0.2.1" : "192.0.2.5",
      asn: 65000,
      localAddress: n === 1 ? "192.0.2.2" : "192.0.2.6",
    },
  ],
  announce: [V4, V6],
});

async function paths(lab: TestLab, prefix: string): Promise<PathJson[]> {
  const afi = prefix.includes(":") ? "ipv6" : "ipv4";
  const r = await lab.vtyshJson<{ paths?: PathJson[] }>(
    "edge",
    `show bgp ${afi} unicast ${prefix} json`,
  );
  return r.paths ?? [];
}

const hopsAre = async (lab: TestLab, prefix: string, want: string[]) =>
  JSON.stringify(await fibNextHops(lab, "edge", prefix)) === JSON.stringify(want);

describe.skipIf(!isRoot)("vipmux with FRR in the traditional profile", () => {
  let lab: TestLab;
  let mux1: SpeakerHandle;
  let mux2: SpeakerHandle;

  beforeAll(async () => {
    lab = await startLab(bgpFixture("traditional.clab.yml"), "bgptrad");
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("establishes and the VIPs pass the RFC 8212 policy into RIB and FIB, ECMP", async () => {
    mux1 = await startSpeaker(lab, "mux1", mux(1));
    mux2 = await startSpeaker(lab, "mux2", mux(2));
    await waitEstablished(mux1);
    await waitEstablished(mux2);
    await pollUntil(() => hopsAre(lab, V4, ["192.0.2.2", "192.0.2.6"]), {
      timeoutMs: 20_000,
      what: "IPv4 VIP ECMP in the edge FIB",
    });
    await pollUntil(() => hopsAre(lab, V6, ["2001:db8:0:1::2", "2001:db8:0:2::2"]), {
      timeoutMs: 20_000,
      what: "IPv6 VIP ECMP in the edge FIB",
    });
  });

  it("drain: FRR sees GRACEFUL_SHUTDOWN, sets LOCAL_PREF 0 and prefers mux2 before mux1 withdraws", async () => {
    const drained = mux1.call("drain", { waitMs: 4000 });
    // FRR re-runs best path after the re-announcement: mux1's path carries the community
    // and LOCAL_PREF 0 and has left the multipath set; mux2's path is best.
    const during = await pollUntil(
      async () => {
        const ps = await paths(lab, V4);
        const p1 = ps.find((p) => p.peer.peerId === "192.0.2.2");
        const p2 = ps.find((p) => p.peer.peerId === "192.0.2.6");
        return p1?.community?.list.includes("gracefulShutdown") &&
          !p1.bestpath?.overall &&
          !p1.multipath &&
          p2?.bestpath?.overall
          ? ps
          : undefined;
      },
      { timeoutMs: 3000, what: "mux1's path with graceful-shutdown and mux2's path best" },
    );
    expect(during.find((p) => p.peer.peerId === "192.0.2.2")!.locPrf).toBe(0);
    // Traffic already moved: the kernel sends the VIP to mux2 only, while mux1's route is
    // still in the RIB (not yet withdrawn).
    await pollUntil(() => hopsAre(lab, V4, ["192.0.2.6"]), {
      timeoutMs: 3000,
      what: "FIB via mux2 only",
    });
    await pollUntil(() => hopsAre(lab, V6, ["2001:db8:0:2::2"]), {
      timeoutMs: 3000,
      what: "IPv6 FIB via mux2 only",
    });
    expect((await paths(lab, V4)).map((p) => p.peer.peerId).sort()).toEqual([
      "192.0.2.2",
      "192.0.2.6",
    ]);
    await drained;
    await pollUntil(async () => (await paths(lab, V4)).length === 1, {
      timeoutMs: 5000,
      what: "mux1's path withdrawn after the drain",
    });
    expect((await paths(lab, V6)).map((p) => p.peer.peerId)).toEqual(["192.0.2.6"]);
    const st = await mux1.call<{ peers: { state: string }[] }>("status");
    expect(st.peers[0]?.state).toBe("Established"); // the session stays up while drained
  });

  it("undrain announces normally again: ECMP returns", async () => {
    await mux1.call("undrain");
    await pollUntil(() => hopsAre(lab, V4, ["192.0.2.2", "192.0.2.6"]), {
      timeoutMs: 10_000,
      what: "ECMP after undrain",
    });
    const p1 = (await paths(lab, V4)).find((p) => p.peer.peerId === "192.0.2.2");
    expect(p1?.community).toBeUndefined();
  });
});
