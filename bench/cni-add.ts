// cni-add: the wall time of one CNI ADD as a runtime sees it, 200 ADDs one
// after another on one host with twill-agent running and the policy wait on
// (each ADD returns only once the agent reports the endpoint's policy
// programmed). The built plugin runs as a runtime runs it: a new process in
// the host's network namespace, config on stdin, result on stdout.
//
// Baselines, in the same run and the same host namespace:
// - bare: ADD's kernel work for one workload from a shell script with
//   plain `ip` (bench/cni-node.ts), one workload at a time;
// - node: `node -e 0`, what any Node.js plugin pays before its first line.
//
// Figures: median_ms (target <= 100), p99_ms (target <= 250), p90_ms,
// max_ms, bare_median_ms, node_median_ms, ratio_vs_bare, cpu_per_add_ms
// (the plugin process's CPU time with its children, a figure a busy machine
// disturbs less than wall times).
import { spawn } from "node:child_process";
import type { BenchContext, BenchFigures } from "./run.js";
import {
  bareAddScript,
  bareCleanupScript,
  exitedChildrenCpuMs,
  median,
  percentile,
  startBenchNode,
} from "./cni-node.js";

const ADDS = Number(process.env["CNI_ADD_COUNT"] ?? 200);
/** Baseline runs (each is one workload's kernel work, or one bare Node.js start). */
const BASELINE_RUNS = 50;

/**
 * Wall time of `cmd args` run in namespace `ns` as the plugin is run:
 * nsenter, and the environment a runtime gives a plugin (PATH, no more;
 * the lab adds the CNI_* variables). Not this process's environment: a
 * development shell may set NODE_EXTRA_CA_CERTS, with which every Node.js
 * start loads a CA bundle (~40 ms here), which no plugin call pays.
 */
function timed(ns: string, cmd: string, args: readonly string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/var/run/netns/${ns}`, cmd, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`${cmd} failed (${code}): ${stderr}`));
    });
  });
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const node = await startBenchNode({ agent: true, what: "cni-add" });
  const { lab, host, config } = node;
  try {
    // Baselines first (the agent is idle: it knows nothing of these interfaces' owners).
    const bare: number[] = [];
    const nodeStarts: number[] = [];
    for (let i = 0; i < BASELINE_RUNS; i++) {
      const ns = await lab.addWorkload();
      bare.push(await timed(host, "sh", ["-c", bareAddScript([ns], `a${i}`, { parallel: false })]));
      await lab.run(host, "sh", ["-c", bareCleanupScript(1, `a${i}`)]);
      await lab.deleteNamespace(ns);
      nodeStarts.push(await timed(host, process.execPath, ["-e", "0"]));
    }
    ctx.log(
      `baselines: bare kernel work ${median(bare).toFixed(1)} ms, node -e 0 ${median(nodeStarts).toFixed(1)} ms (medians of ${BASELINE_RUNS})`,
    );

    const latencies: number[] = [];
    let cpuMs = 0;
    for (let i = 0; i < ADDS; i++) {
      const netns = await lab.addWorkload();
      const cpuBefore = exitedChildrenCpuMs();
      const call = await lab.plugin(
        host,
        {
          CNI_COMMAND: "ADD",
          CNI_CONTAINERID: `add-${i}`,
          CNI_NETNS: netns,
          CNI_IFNAME: "eth0",
          CNI_PATH: "/opt/cni/bin",
        },
        config,
      );
      if (call.exitCode !== 0) {
        throw new Error(`ADD ${i} failed: ${call.stdout} ${call.stderr}`);
      }
      latencies.push(call.ms);
      cpuMs += exitedChildrenCpuMs() - cpuBefore;
      if ((i + 1) % 50 === 0) {
        ctx.log(
          `${i + 1}/${ADDS} ADDs: median so far ${median(latencies).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`,
        );
      }
    }
    const med = median(latencies);
    const bareMed = median(bare);
    return {
      adds: ADDS,
      policy_wait: true,
      median_ms: Math.round(med),
      p90_ms: Math.round(percentile(latencies, 90)),
      p99_ms: Math.round(percentile(latencies, 99)),
      max_ms: Math.round(Math.max(...latencies)),
      bare_median_ms: Number(bareMed.toFixed(1)),
      node_median_ms: Number(median(nodeStarts).toFixed(1)),
      ratio_vs_bare: Number((med / bareMed).toFixed(1)),
      cpu_per_add_ms: Math.round(cpuMs / ADDS),
    };
  } finally {
    await node.close();
  }
}
