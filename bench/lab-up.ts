// lab-up: how long `twill lab up` takes for 4, 16 and 50 hosts (leaf-spine,
// 2 workloads per host, up to "converged": every BGP session established
// and a route to every workload on every host and router), and `lab down`.
//
// Baseline, in the same run and for the same plan: the bare plumbing of
// that topology, built as fast as the lab builds it (the lab's network step:
// namespaces, bridges, veths, addresses, routes), plus every workload
// plugged with a veth, its address and routes; no etcd, agent, BIRD, FRR or
// CNI plugin. ratio_N = up_s_N / bare_s_N says what the daemons, the CNI
// ADDs and BGP convergence add to the plumbing.
//
// Racks: 2 for 4 hosts, then one per 10 hosts (16 → 2, 50 → 5).
// Override the sizes with LAB_UP_SIZES=4,16.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { labDown, labUp } from "../src/lab/lab.js";
import type { LabProgress } from "../src/lab/lab.js";
import type { LabOptions } from "../src/lab/topology.js";
import { buildBareWorld } from "./lab-throughput.js";
import type { BenchContext, BenchFigures } from "./run.js";

const SIZES = (process.env["LAB_UP_SIZES"] ?? "4,16,50")
  .split(",")
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const WORKLOADS_PER_HOST = 2;

function racksFor(hosts: number): number {
  return hosts <= 4 ? 2 : Math.max(2, Math.ceil(hosts / 10));
}

const seconds = (ms: number): number => Number((ms / 1000).toFixed(2));

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  if (process.getuid?.() !== 0) throw new Error("lab-up needs root");
  const root = mkdtempSync(join(tmpdir(), "twl-bench-"));
  const settings = { stateRoot: root };
  const figures: BenchFigures = { workloads_per_host: WORKLOADS_PER_HOST };
  try {
    for (const hosts of SIZES) {
      const options: Partial<LabOptions> = {
        topology: "leaf-spine",
        hosts,
        racks: racksFor(hosts),
        workloadsPerHost: WORKLOADS_PER_HOST,
      };
      const bareName = `bub${hosts}`;
      const labName = `bul${hosts}`;
      await labDown(bareName, settings);
      await labDown(labName, settings);

      const b0 = performance.now();
      await buildBareWorld({ ...options, name: bareName }, { dir: root, routes: false });
      const bareMs = performance.now() - b0;
      await labDown(bareName, settings);

      const steps: string[] = [];
      const onProgress = (p: LabProgress): void => {
        if (p.state === "done") steps.push(`${p.step} ${seconds(p.stepMs ?? 0)}`);
      };
      const u0 = performance.now();
      const info = await labUp(
        { ...options, name: labName },
        { ...settings, timeoutMs: 300_000, onProgress },
      );
      const upMs = performance.now() - u0;
      const d0 = performance.now();
      await labDown(labName, settings);
      const downMs = performance.now() - d0;

      ctx.log(
        `${hosts} hosts, ${options.racks} racks, ${info.workloads.length} workloads: lab up ${seconds(upMs)} s (${steps.join(", ")}), down ${seconds(downMs)} s; bare plumbing ${seconds(bareMs)} s`,
      );
      figures[`up_s_${hosts}`] = seconds(upMs);
      figures[`down_s_${hosts}`] = seconds(downMs);
      figures[`bare_s_${hosts}`] = seconds(bareMs);
      figures[`ratio_${hosts}`] = Number((upMs / bareMs).toFixed(1));
    }
    return figures;
  } finally {
    for (const hosts of SIZES) {
      await labDown(`bub${hosts}`, settings).catch(() => undefined);
      await labDown(`bul${hosts}`, settings).catch(() => undefined);
    }
    rmSync(root, { recursive: true, force: true });
  }
}
