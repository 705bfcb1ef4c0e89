// cni-burst: 100 CNI ADDs started together on one host, as a node starting
// 100 pods at once sees them: the built plugin run as a runtime runs it, in
// a host network namespace, against a real etcd, each ADD its own process.
//
// Baseline, in the same run: the floor of the kernel work alone. A shell
// script in the same host namespace does, for 100 workloads at once, what
// the plugin does to the kernel (veth pair with the peer in the workload
// namespace, addresses, the workload's two routes, the host route) with
// plain `ip` commands: no Node.js, no datastore, no IPAM.
//
// Figures: total_s (the burst's wall time; target <= 10), baseline_s,
// ratio_vs_bare = total_s / baseline_s, the ADDs' median and p99 latency,
// del_total_s (100 DELs at once). Medians over `rounds` rounds. The policy
// wait is off (policy_wait: false) until the agent exists to answer it.
import { startEtcd } from "../src/datastore/etcd-server.js";
import { ResourceStore } from "../src/datastore/resource-store.js";
import { EtcdHttpBackend } from "../src/cni/etcd-http-backend.js";
import { mapLimit, netnsUnavailableReason, startNetnsLab } from "../src/cni/testing/netns-lab.js";
import type { PluginCall } from "../src/cni/testing/netns-lab.js";
import type { BenchContext, BenchFigures } from "./run.js";

const ADDS = 100;
const ROUNDS = Number(process.env["CNI_BURST_ROUNDS"] ?? 3);

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}

function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

/** One workload's kernel work, as the plugin does it, in plain `ip` (run inside the host). */
function bareScript(netnses: readonly string[], round: number): string {
  const lines = ["set -e"];
  netnses.forEach((ns, i) => {
    const host = `twb${round}x${i}`;
    const ip = `10.99.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    lines.push(
      "(",
      `  ip link add ${host} address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns ${ns}`,
      `  echo 1 > /proc/sys/net/ipv4/conf/${host}/proxy_arp`,
      `  echo 0 > /proc/sys/net/ipv4/neigh/${host}/proxy_delay`,
      `  ip link set ${host} up`,
      `  ip route add ${ip}/32 dev ${host} scope link proto 116`,
      `  nsenter --net=${ns} ip -batch - <<EOF`,
      "link set eth0 up",
      `addr add ${ip}/32 dev eth0`,
      "route add 169.254.1.1 dev eth0 scope link",
      "route add default via 169.254.1.1 dev eth0",
      "EOF",
      ") &",
    );
  });
  lines.push("wait");
  return lines.join("\n");
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const unavailable = netnsUnavailableReason();
  if (unavailable) throw new Error(`cni-burst ${unavailable}`);
  const etcd = await startEtcd();
  const backend = new EtcdHttpBackend({ endpoints: [etcd.endpoint] });
  const lab = await startNetnsLab(etcd.endpoint);
  try {
    const store = new ResourceStore(backend);
    await store.create({
      apiVersion: "projectcalico.org/v3",
      kind: "IPPool",
      metadata: { name: "bench" },
      spec: { cidr: "10.80.0.0/16" },
    });
    await store.create({
      apiVersion: "projectcalico.org/v3",
      kind: "Node",
      metadata: { name: "bench-host" },
      spec: {},
    });
    const host = await lab.addHost();
    const config = {
      cniVersion: "1.1.0",
      name: "bench",
      type: "twill",
      nodename: "bench-host",
      etcd_endpoints: lab.etcdEndpoint,
      policy: { waitForProgrammed: false },
    };
    const totals: number[] = [];
    const baselines: number[] = [];
    const deletes: number[] = [];
    const latencies: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const netnses = await mapLimit(
        Array.from({ length: ADDS }, (_, i) => i),
        16,
        () => lab.addWorkload(),
      );
      // The floor: the same kernel work from a shell script.
      const bareStart = performance.now();
      const bare = await lab.run(host, "sh", ["-c", bareScript(netnses, round)]);
      const bareSeconds = (performance.now() - bareStart) / 1000;
      if (bare.code !== 0) throw new Error(`baseline script failed: ${bare.stderr}`);
      // Clean the baseline away (deleting the host side removes the pair).
      await lab.run(host, "sh", [
        "-c",
        Array.from({ length: ADDS }, (_, i) => `ip link del twb${round}x${i}`).join("\n"),
      ]);

      const env = (command: string, i: number): Record<string, string> => ({
        CNI_COMMAND: command,
        CNI_CONTAINERID: `bench-${round}-${i}`,
        CNI_NETNS: netnses[i] as string,
        CNI_IFNAME: "eth0",
        CNI_PATH: "/opt/cni/bin",
      });
      const start = performance.now();
      const adds: PluginCall[] = await Promise.all(
        netnses.map((_, i) => lab.plugin(host, env("ADD", i), config)),
      );
      const seconds = (performance.now() - start) / 1000;
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
      policy_wait: false,
      total_s: Number(total.toFixed(2)),
      baseline_s: Number(baseline.toFixed(2)),
      ratio_vs_bare: Number((total / baseline).toFixed(1)),
      add_median_ms: Math.round(median(latencies)),
      add_p99_ms: Math.round(percentile(latencies, 99)),
      del_total_s: Number(median(deletes).toFixed(2)),
    };
  } finally {
    await lab.close();
    await backend.close();
    await etcd.stop();
  }
}
