// Run as a child process by allocation.test.ts: forwards packets in a loop and prints how
// many garbage collections happened meanwhile. A per-packet allocation of even 16 bytes
// fills V8's young generation within ~1M packets and shows up as scavenges.
import { PerformanceObserver } from "node:perf_hooks";
import { Forwarder, Verdict } from "../../../src/dataplane/forwarder.ts";
import { buildForwardingTable } from "../../../src/lb/forwarding-table.ts";
import { buildIcmpError, buildPacket } from "../packet/packets.ts";

const table = buildForwardingTable({
  services: [
    {
      name: "v4",
      vip: "20.20.20.100",
      ports: [{ protocol: "tcp", port: 80 }, { protocol: "udp", port: 53 }, { protocol: "icmp" }],
      vni: 1,
      backends: [
        { dip: "10.0.0.1", host: "192.168.0.1" },
        { dip: "10.0.0.2", host: "192.168.0.2" },
      ],
    },
    {
      name: "v6",
      vip: "2001:db8::10",
      ports: [{ protocol: "tcp", port: 443 }],
      vni: 2,
      backends: [{ dip: "fd00::1", host: "fd01::1" }],
    },
  ],
});
if (!table.ok) throw new Error(table.error.join());
const fwd = new Forwarder({
  localV4: "192.168.1.1",
  localV6: "fd01::2",
  innerDstMac: "02:00:00:00:00:01",
  innerSrcMac: "02:00:00:00:00:02",
});
fwd.setTable(table.value);
const packets: Uint8Array[] = [];
for (let i = 0; i < 256; i++) {
  packets.push(
    buildPacket({
      src: `198.51.100.${i}`,
      dst: "20.20.20.100",
      proto: "tcp",
      sport: 1000 + i,
      dport: 80,
      flags: i % 3 === 0 ? 0x02 : 0x10,
    }),
  );
  packets.push(
    buildPacket({
      src: `198.51.100.${i}`,
      dst: "20.20.20.100",
      proto: "udp",
      sport: 2000 + i,
      dport: 53,
    }),
  );
  packets.push(
    buildPacket({
      src: `2001:db8:1::${i.toString(16)}`,
      dst: "2001:db8::10",
      proto: "tcp",
      sport: 3000 + i,
      dport: 443,
    }),
  );
  packets.push(buildPacket({ src: `198.51.100.${i}`, dst: "20.20.20.100", proto: "icmp" }));
  packets.push(
    buildPacket({ src: `198.51.100.${i}`, dst: "20.20.20.99", proto: "tcp", sport: 1, dport: 80 }),
  ); // dropped: no service
  const quoted = buildPacket({
    src: "20.20.20.100",
    dst: `198.51.100.${i}`,
    proto: "tcp",
    sport: 80,
    dport: 1000 + i,
  });
  packets.push(buildIcmpError("203.0.113.1", "20.20.20.100", 3, 4, quoted, 28, 1400));
}
let forwarded = 0;
const run = (n: number, now: number) => {
  for (let i = 0; i < n; i++) {
    const p = packets[i % packets.length]!;
    if (fwd.forward(p, p.length, now) === Verdict.forward) forwarded++;
  }
  fwd.expire(now, 64);
};
for (let r = 0; r < 20; r++) run(50_000, r); // warm-up: every path optimised
forwarded = 0;
let gcs = 0;
const obs = new PerformanceObserver((list) => {
  gcs += list.getEntries().length;
});
obs.observe({ entryTypes: ["gc"] });
const packetsRun = Number(process.argv[2] ?? 3_000_000);
for (let r = 0; r < 30; r++) run(packetsRun / 30, 1000 + r);
setTimeout(() => {
  obs.disconnect();
  console.log(JSON.stringify({ gcs, packets: packetsRun, forwarded }));
}, 100);
