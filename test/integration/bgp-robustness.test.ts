// A peer that stops reading (zero window): the speaker's send queue stays bounded while the
// rest of the table waits as dirty prefixes, then the send hold timer (RFC 9687) drops the
// peer, and the process lives on and reconnects.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil, startLab, type TestLab } from "../../src/lab/testing.ts";
import {
  bgpFixture,
  type SpeakerHandle,
  startSpeaker,
  waitEstablished,
} from "../fixtures/bgp-lab/control.ts";
import { isRoot } from "./helpers.ts";

interface Status {
  peers: {
    state: string;
    lastError: string;
    sendQueueBytes: number;
    prefixesPending: number;
    prefixesSent: number;
    counters: { established: number };
  }[];
}

describe.skipIf(!isRoot)("a peer that stops reading", () => {
  let lab: TestLab;
  let mux: SpeakerHandle;

  beforeAll(async () => {
    lab = await startLab(bgpFixture("stall.clab.yml"), "bgpstall");
    lab.spawn(
      "peer",
      [process.execPath, bgpFixture("stall-peer.ts"), "10.0.9.2", "65000"],
      "stall-peer",
    );
    await new Promise((r) => setTimeout(r, 1000));
    mux = await startSpeaker(lab, "mux", {
      asn: 65101,
      routerId: "10.0.9.1",
      listen: false,
      idleHoldMs: 500,
      sendBufferBytes: 64 * 1024,
      sendHoldMs: 6000,
      peers: [{ address: "10.0.9.2", asn: 65000, localAddress: "10.0.9.1", families: ["ipv4"] }],
    });
    await waitEstablished(mux);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("bounds the send queue, drops the peer at send hold expiry, and stays up", {
    timeout: 60_000,
  }, async () => {
    await new Promise((r) => setTimeout(r, 500)); // the peer has stopped reading
    await mux.call("announce-range", { base: (10 << 24) | (64 << 16), count: 200_000 });
    let maxQueued = 0;
    let maxPending = 0;
    let down: Status["peers"][number] | undefined;
    const start = Date.now();
    while (Date.now() - start < 20_000) {
      const st = await mux.call<Status>("status");
      const p = st.peers[0]!;
      if (p.state !== "Established") {
        down = p;
        break;
      }
      maxQueued = Math.max(maxQueued, p.sendQueueBytes);
      maxPending = Math.max(maxPending, p.prefixesPending);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Only the buffer limit plus one packed step ever waited in the process...
    expect(maxQueued).toBeGreaterThan(0);
    expect(maxQueued).toBeLessThan(64 * 1024 + 20_000 * 5 + 4096);
    // ...while most of the table waited as dirty prefixes, costing no buffers.
    expect(maxPending).toBeGreaterThan(150_000);
    expect(down?.lastError ?? "").toMatch(/send hold timer expired/);
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThan(5000);
    // The process is alive and reconnects by itself.
    await pollUntil(
      async () => (await mux.call<Status>("status")).peers[0]!.counters.established >= 2,
      { timeoutMs: 15_000, what: "the speaker to reconnect" },
    );
    const mem = await mux.call<{ rss: number }>("memory");
    expect(mem.rss).toBeLessThan(400 * 1024 * 1024);
  });
});
