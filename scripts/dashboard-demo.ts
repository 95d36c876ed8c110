// Renders docs/dashboard.png from a real lab run: the whole canonical system, a real
// Prometheus scraping both MUXes, ~3 minutes of traffic with a few events (a backend
// drained, a DIP failing, mux1's forwarder stalled), then the Grafana dashboard JSON
// rendered by scripts/render-dashboard.ts. Root; everything in lab namespaces; bounded.
//   node scripts/dashboard-demo.ts [OUT.png]
import { fileURLToPath } from "node:url";
import { fibNextHops, pollUntil, startLab, TEST_FAULTS } from "../src/lab/testing.ts";
import { run, sleep } from "../src/util/proc.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const out = process.argv[2] ?? `${root}docs/dashboard.png`;
const node = process.execPath;
const cli = `${root}src/cli/main.ts`;

// TEST_FAULTS: mux1's forwarder is stalled below (SIGUSR2).
const lab = await startLab(`${root}containerlab/vipmux.clab.yml`, "dash", {
  env: { mux1: TEST_FAULTS },
});
try {
  await pollUntil(async () => (await fibNextHops(lab, "edge", "20.20.20.100")).length === 2, {
    timeoutMs: 60_000,
    what: "the VIP via both MUXes",
  });
  lab.spawn(
    "client",
    [
      "prometheus",
      `--config.file=${root}test/fixtures/controller-lab/prometheus.yml`,
      `--storage.tsdb.path=${lab.plan.dir}/prometheus`,
      "--web.listen-address=127.0.0.1:9090",
    ],
    "prometheus",
  );
  const traffic = async (seconds: number) => {
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      await lab.exec("client", [
        node,
        `${root}test/fixtures/system/spread.ts`,
        "http://20.20.20.100/",
        "300",
        "10",
      ]);
      await lab.exec(
        "client",
        [node, `${root}test/fixtures/system/flood.ts`, "20.20.20.100", "7", "3", "16"],
        {
          timeoutMs: 30_000,
        },
      );
    }
  };
  const log = (m: string) => console.log(`${new Date().toISOString()} ${m}`);
  log("traffic");
  await traffic(50);
  log("drain backend web/10.10.1.11 on both MUXes");
  for (const m of ["mux1", "mux2"])
    await lab.exec(m, [
      node,
      cli,
      "drain",
      "backend",
      "web/10.10.1.11",
      "-s",
      `/run/vipmux/${m}.sock`,
    ]);
  await traffic(30);
  for (const m of ["mux1", "mux2"])
    await lab.exec(m, [
      node,
      cli,
      "undrain",
      "backend",
      "web/10.10.1.11",
      "-s",
      `/run/vipmux/${m}.sock`,
    ]);
  log("vm22's server refuses connections for 30 s");
  const vm22 = lab.node("vm22").netns;
  await run(["ip", "netns", "exec", vm22, "nft", "-f", "-"], {
    input:
      "table inet demo { chain input { type filter hook input priority 0; tcp dport 8080 reject with tcp reset; } }",
  });
  await traffic(30);
  await run(["ip", "netns", "exec", vm22, "nft", "delete", "table", "inet", "demo"]);
  log("mux1's forwarder stalled for 20 s");
  const mux1Pid = (await run(["ip", "netns", "pids", lab.node("mux1").netns])).stdout
    .trim()
    .split(/\s+/)[0];
  process.kill(Number(mux1Pid), "SIGUSR2");
  await traffic(20);
  process.kill(Number(mux1Pid), "SIGUSR2");
  await traffic(40);
  await sleep(3000);
  log("render");
  const r = await lab.exec(
    "client",
    [
      node,
      `${root}scripts/render-dashboard.ts`,
      `${root}docs/grafana/vipmux-dashboard.json`,
      "http://127.0.0.1:9090",
      out,
      "4",
    ],
    { timeoutMs: 120_000 },
  );
  console.log(r.stdout, r.stderr);
} finally {
  await lab.down();
}
