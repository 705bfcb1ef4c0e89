// What the CNI benchmarks (cni-add, cni-burst) share: one node as a runtime
// sees it, and the floor they are measured against.
//
//   etcd (throw-away) ◄── lab unix socket ◄── host namespace: twill agent (policy wait answered)
//                                                             plugin runs (nsenter, as a runtime)
//
// The floor: what ADD does to the kernel (veth pair with the peer in the
// workload's namespace, the host side's sysctls, link up, the /32 route; in
// the workload: link up, the address, the route to 169.254.1.1 and the
// default route) done by a shell script with plain `ip`: no Node.js, no
// datastore, no IPAM, no policy.
import { readFileSync } from "node:fs";
import { startEtcd } from "../src/datastore/etcd-server.js";
import type { EtcdServer } from "../src/datastore/etcd-server.js";
import { ResourceStore } from "../src/datastore/resource-store.js";
import { EtcdHttpBackend } from "../src/cni/etcd-http-backend.js";
import { netnsUnavailableReason, startNetnsLab } from "../src/cni/testing/netns-lab.js";
import type { LabAgent, NetnsLab } from "../src/cni/testing/netns-lab.js";

export const BENCH_NODE = "bench-host";
export const BENCH_NAMESPACE = "bench";

export interface BenchNode {
  lab: NetnsLab;
  host: string;
  agent: LabAgent | undefined;
  /** The plugin's network config (policy wait as asked). */
  config: Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * etcd, a lab with one host namespace, a pool, the namespace's profile and
 * a policy selecting every workload (so each ADD gives the agent real policy
 * to program), and with `agent` the agent running in the host.
 */
export async function startBenchNode(options: {
  agent: boolean;
  what: string;
  /** More flags for `twill agent`. */
  agentArgs?: readonly string[];
}): Promise<BenchNode> {
  const unavailable = netnsUnavailableReason();
  if (unavailable) throw new Error(`${options.what} ${unavailable}`);
  let etcd: EtcdServer | undefined;
  let backend: EtcdHttpBackend | undefined;
  let lab: NetnsLab | undefined;
  let agent: LabAgent | undefined;
  const close = async (): Promise<void> => {
    await agent?.stop();
    await lab?.close();
    await backend?.close();
    await etcd?.stop();
  };
  try {
    etcd = await startEtcd();
    backend = new EtcdHttpBackend({ endpoints: [etcd.endpoint] });
    lab = await startNetnsLab(etcd);
    const store = new ResourceStore(backend);
    const v3 = "projectcalico.org/v3";
    await store.create({
      apiVersion: v3,
      kind: "IPPool",
      metadata: { name: "bench" },
      spec: { cidr: "10.80.0.0/16" },
    });
    await store.create({ apiVersion: v3, kind: "Node", metadata: { name: BENCH_NODE }, spec: {} });
    await store.create({
      apiVersion: v3,
      kind: "Profile",
      metadata: { name: `kns.${BENCH_NAMESPACE}` },
      spec: { ingress: [{ action: "Allow" }], egress: [{ action: "Allow" }] },
    });
    await store.create({
      apiVersion: v3,
      kind: "GlobalNetworkPolicy",
      metadata: { name: "bench-web" },
      spec: {
        selector: "app == 'bench'",
        types: ["Ingress", "Egress"],
        ingress: [
          {
            action: "Allow",
            protocol: "TCP",
            source: { selector: "app == 'bench'" },
            destination: { ports: [80, 443] },
          },
        ],
        egress: [{ action: "Allow" }],
      },
    });
    const host = await lab.addHost();
    if (options.agent) {
      agent = await lab.startAgent(host, {
        node: BENCH_NODE,
        ...(options.agentArgs ? { args: options.agentArgs } : {}),
      });
    }
    const config = {
      cniVersion: "1.1.0",
      name: "bench",
      type: "twill",
      nodename: BENCH_NODE,
      namespace: BENCH_NAMESPACE,
      labels: { app: "bench" },
      etcd_endpoints: lab.etcdEndpoint,
      policy: { waitForProgrammed: options.agent },
    };
    return { lab, host, agent, config, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The floor's shell script: ADD's kernel work for each workload (`netnses[i]`), in plain `ip`. */
export function bareAddScript(
  netnses: readonly string[],
  tag: string,
  options: { parallel: boolean },
): string {
  const lines = ["set -e"];
  netnses.forEach((ns, i) => {
    const host = `twb${tag}x${i}`;
    const ip = `10.99.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    lines.push(
      "(",
      `  ip link add ${host} address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns ${ns}`,
      `  echo 1 > /proc/sys/net/ipv4/conf/${host}/proxy_arp`,
      `  echo 0 > /proc/sys/net/ipv4/neigh/${host}/proxy_delay`,
      `  echo 1 > /proc/sys/net/ipv4/conf/${host}/forwarding`,
      `  ip link set ${host} up`,
      `  ip route add ${ip}/32 dev ${host} scope link proto 116`,
      `  nsenter --net=${ns} ip -batch - <<EOF`,
      "link set eth0 up",
      `addr add ${ip}/32 dev eth0`,
      "route add 169.254.1.1 dev eth0 scope link",
      "route add default via 169.254.1.1 dev eth0",
      "EOF",
      options.parallel ? ") &" : ")",
    );
  });
  if (options.parallel) lines.push("wait");
  return lines.join("\n");
}

/** Removes what bareAddScript made (deleting the host side removes the pair). */
export function bareCleanupScript(count: number, tag: string): string {
  return Array.from({ length: count }, (_, i) => `ip link del twb${tag}x${i}`).join("\n");
}

/**
 * CPU time (user + system, ms) of this process's children that have exited
 * so far, with theirs: a plugin run's whole cost, `ip` and `nsenter`
 * included. Linux counts it in clock ticks of 10 ms: use differences over
 * many runs.
 */
export function exitedChildrenCpuMs(): number {
  // Fields after the command name: state is [0], cutime [13], cstime [14].
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}

export function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}
