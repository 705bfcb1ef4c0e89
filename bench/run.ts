// The benchmark runner behind `npm run bench -- NAME`.
//
// Benchmarks are not tests: each measures throughput, compares it with a
// baseline measured in the same run, and prints human progress lines followed,
// as the very LAST line of output, by its figures as one JSON object on one
// line (with "bench": NAME and a description of the machine), so scripts can
// take `tail -n 1` and docs/benchmarks.md can record it.
//
//   npm run bench              lists the benchmarks
//   npm run bench -- NAME      runs one; exit 0, or 1 if it failed
//   unknown NAME or bad usage  exit 2
//
// A benchmark is a module bench/<name>.ts exporting
// `run(ctx: BenchContext): Promise<Record<string, number | string>>`,
// registered in BENCHMARKS below.

import os from "node:os";

export interface BenchContext {
  /** Prints one human-readable progress line. */
  log(line: string): void;
}

export type BenchFigures = Record<string, number | string | boolean>;

interface BenchModule {
  run(ctx: BenchContext): Promise<BenchFigures>;
}

interface BenchEntry {
  description: string;
  load(): Promise<BenchModule>;
}

const BENCHMARKS: Record<string, BenchEntry> = {
  "cni-add": {
    description:
      "200 CNI ADDs one after another with the agent running and the policy wait on vs the same kernel work from a shell script (median_ms, p99_ms)",
    load: () => import("./cni-add.js"),
  },
  "cni-burst": {
    description:
      "100 CNI ADDs started together on one host vs the same kernel work from a shell script (total_s, ratio_vs_bare)",
    load: () => import("./cni-burst.js"),
  },
  selector: {
    description:
      "selector parse and match throughput over a realistic mix (parse_per_s, match_per_s)",
    load: () => import("./selector.js"),
  },
  ipam: {
    description:
      "IPAM allocations against a real etcd: one host, ten hosts in parallel, CAS retries, vs plain puts",
    load: () => import("./ipam.js"),
  },
  "label-index": {
    description:
      "label index at 250k endpoints / 10k selectors vs a naive baseline (build_s, item_updates_per_s, selector_adds_per_s)",
    load: () => import("./label-index.js"),
  },
  calc: {
    description:
      "calc graph at 250k endpoints / 10k policies vs a naive baseline (full_sync_s, rss_mb, updates_per_s, baseline_full_sync_s)",
    load: () => import("./calc.js"),
  },
  dataplane: {
    description:
      "2,000 endpoints / 10,000 rules / 50,000 set members into a netns through the real drivers vs plain nft -f (first_apply_s, endpoint_add_ms)",
    load: () => import("./dataplane.js"),
  },
  "packet-path": {
    description:
      "one TCP stream between two workloads through 1,000 policy rules per direction vs no twill table (ratio, Gbit/s)",
    load: () => import("./packet-path.js"),
  },
  propagation: {
    description:
      "CNI ADD on host A to the first TCP connection from a workload on host B under policy, 50 workloads, real agents + BIRD vs the same from host A (median_ms, p99_ms)",
    load: () => import("./propagation.js"),
  },
  "bgp-scale": {
    description:
      "BIRD with the rendered configuration in 100 namespaces (full mesh) and 300 (2 reflectors): cold start until every FIB holds every block (mesh_converge_s, rr_converge_s, bird_rss_mb)",
    load: () => import("./bgp-scale.js"),
  },
  "lab-up": {
    description:
      "twill lab up (leaf-spine, 2 workloads a host) for 4, 16 and 50 hosts vs the bare namespace+veth plumbing of the same topology (up_s_N, bare_s_N)",
    load: () => import("./lab-up.js"),
  },
  "lab-throughput": {
    description:
      "one TCP stream across racks through twill with 1,000 rules per direction vs the same topology with static routes and over VXLAN (ratio_bare, ratio_overlay)",
    load: () => import("./lab-throughput.js"),
  },
};

function listBenchmarks(write: (line: string) => void): void {
  write("benchmarks (run one with: npm run bench -- NAME):");
  for (const [name, entry] of Object.entries(BENCHMARKS)) {
    write(`  ${name.padEnd(12)} ${entry.description}`);
  }
}

/** What the figures were measured on, for docs/benchmarks.md. */
function machine(): BenchFigures {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cpus: cpus.length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
  };
}

async function main(args: readonly string[]): Promise<number> {
  if (args.length === 0) {
    listBenchmarks((line) => console.log(line));
    return 0;
  }
  const [name] = args;
  if (args.length > 1 || name === undefined) {
    console.error(`usage: npm run bench -- NAME (one benchmark at a time, got ${args.length})`);
    return 2;
  }
  const entry = Object.hasOwn(BENCHMARKS, name) ? BENCHMARKS[name] : undefined;
  if (entry === undefined) {
    console.error(`unknown benchmark "${name}"`);
    listBenchmarks((line) => console.error(line));
    return 2;
  }
  const log = (line: string) => console.log(`${name}: ${line}`);
  try {
    const mod = await entry.load();
    const started = performance.now();
    const figures = await mod.run({ log });
    log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    console.log(JSON.stringify({ bench: name, ...figures, ...machine() }));
    return 0;
  } catch (err) {
    console.error(
      `benchmark "${name}" failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
