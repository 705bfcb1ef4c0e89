// cni-burst: 100 CNI ADDs started together on one host, as a node starting
// 100 pods at once sees them: the built plugin run as a runtime runs it, in
// a host network namespace with twill-agent running, against a real etcd,
// each ADD its own process, the policy wait on: when the burst is done,
// every workload has its addresses and its policy programmed.
//
// Baseline, in the same run: the floor of the kernel work alone. A shell
// script in the same host namespace does, for 100 workloads at once, what
// the plugin does to the kernel (bench/cni-node.ts): no Node.js, no
// datastore, no IPAM, no policy.
//
// Figures: total_s (the burst's wall time; target <= 10), baseline_s,
// ratio_vs_bare = total_s / baseline_s, the ADDs' median and p99 latency,
// del_total_s (100 DELs at once), cpu_per_add_ms (each plugin process's CPU
// time with its children, what a busy machine disturbs least). Medians over
// `rounds` rounds.
import { mapLimit } from "../src/cni/testing/netns-lab.js";
import type { PluginCall } from "../src/cni/testing/netns-lab.js";
import type { BenchContext, BenchFigures } from "./run.js";
import {
  bareAddScript,
  bareCleanupScript,
  exitedChildrenCpuMs,
  median,
  percentile,
  startBenchNode,
} from "./cni-node.js";

const ADDS = 100;
const ROUNDS = Number(process.env["CNI_BURST_ROUNDS"] ?? 3);

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const node = await startBenchNode({ agent: true, what: "cni-burst" });
  const { lab, host, config } = node;
  try {
    const totals: number[] = [];
    const baselines: number[] = [];
    const deletes: number[] = [];
    const latencies: number[] = [];
    const cpuPerAdd: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const netnses = await mapLimit(
        Array.from({ length: ADDS }, (_, i) => i),
        16,
        () => lab.addWorkload(),
      );
      // The floor: the same kernel work from a shell script.
      const bareStart = performance.now();
      const bare = await lab.run(host, "sh", [
        "-c",
        bareAddScript(netnses, `${round}`, { parallel: true }),
      ]);
      const bareSeconds = (performance.now() - bareStart) / 1000;
      if (bare.code !== 0) throw new Error(`baseline script failed: ${bare.stderr}`);
      await lab.run(host, "sh", ["-c", bareCleanupScript(ADDS, `${round}`)]);

      const env = (command: string, i: number): Record<string, string> => ({
        CNI_COMMAND: command,
        CNI_CONTAINERID: `bench-${round}-${i}`,
        CNI_NETNS: netnses[i] as string,
        CNI_IFNAME: "eth0",
        CNI_PATH: "/opt/cni/bin",
      });
      const cpuBefore = exitedChildrenCpuMs();
      const start = performance.now();
      const adds: PluginCall[] = await Promise.all(
        netnses.map((_, i) => lab.plugin(host, env("ADD", i), config)),
      );
      const seconds = (performance.now() - start) / 1000;
      cpuPerAdd.push((exitedChildrenCpuMs() - cpuBefore) / ADDS);
      const failed = adds.filter((a) => a.exitCode !== 0);
      if (failed.length > 0) {
        const e = failed[0];
        throw new Error(`${failed.length} ADDs failed, e.g. ${e?.stdout ?? ""} ${e?.stderr ?? ""}`);
      }
      const ips = adds.map((a) => JSON.stringify(a.json?.["ips"]));
      if (new Set(ips).size !== ADDS) throw new Error("an address was handed out twice");
      latencies.push(...adds.map((a) => a.ms));

      const delStart = performance.now();
      const dels = await Promise.all(
        netnses.map((_, i) => lab.plugin(host, env("DEL", i), config)),
      );
      const delSeconds = (performance.now() - delStart) / 1000;
      const delFailed = dels.filter((d) => d.exitCode !== 0);
      if (delFailed.length > 0) {
        const e = delFailed[0];
        throw new Error(
          `${delFailed.length} DELs failed, e.g. ${e?.stdout ?? ""} ${e?.stderr ?? ""}`,
        );
      }
      await mapLimit(netnses, 16, (n) => lab.deleteNamespace(n));
      ctx.log(
        `round ${round + 1}/${ROUNDS}: ${ADDS} ADDs ${seconds.toFixed(2)} s, bare ${bareSeconds.toFixed(2)} s, ${ADDS} DELs ${delSeconds.toFixed(2)} s`,
      );
      totals.push(seconds);
      baselines.push(bareSeconds);
      deletes.push(delSeconds);
    }
    const total = median(totals);
    const baseline = median(baselines);
    return {
      adds: ADDS,
      rounds: ROUNDS,
      policy_wait: true,
      total_s: Number(total.toFixed(2)),
      baseline_s: Number(baseline.toFixed(2)),
      ratio_vs_bare: Number((total / baseline).toFixed(1)),
      add_median_ms: Math.round(median(latencies)),
      add_p99_ms: Math.round(percentile(latencies, 99)),
      del_total_s: Number(median(deletes).toFixed(2)),
      cpu_per_add_ms: Math.round(median(cpuPerAdd)),
    };
  } finally {
    await node.close();
  }
}
