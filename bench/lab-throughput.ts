// lab-throughput: one TCP stream (iperf3) between two workloads on hosts in
// different racks, through twill with 1,000 policy rules per direction
// active, against the same topology twice more, all three built side by
// side and measured alternately in one run:
//
//   twill    a lab (leaf-spine, 2 racks × 1 host, 1 workload each): agents,
//            BIRD, FRR, CNI; one GlobalNetworkPolicy of 1,000 ingress and
//            1,000 egress rules selecting every workload, of which only the
//            last of each allows the stream
//   bare     the same namespaces, links and addresses (the lab's own network
//            step), workloads plugged as the CNI plugin plugs them, static
//            routes on hosts and routers; no twill, no nftables at all
//   overlay  as bare, but the hosts carry workload traffic in VXLAN between
//            them (workload MTU 1450, as VXLAN overlays set it); the
//            routers know only the hosts' subnets
//
//   w ── h1 ── tor1 ── spine1 ── tor2 ── h2 ── w      (iperf3 -c → iperf3 -s)
//
// Figures: Gbit/s of each (medians of ROUNDS rounds, each round running the
// three in a rotating order, RUN_SECONDS each with the first second
// omitted), ratio_bare = median over rounds of twill/bare (target >= 0.95),
// ratio_overlay = median of twill/overlay (target > 1).
//
// Policy decides per connection, as in Calico: the stream's first packet
// walks the rules, then conntrack's established fast path carries it; what
// the ratio shows is the cost of twill's tables and conntrack on both hosts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Resource } from "../src/api/resource.js";
import { validateResource } from "../src/api/validate.js";
import { buildLabNetwork, labDown, labUp, openLabStore } from "../src/lab/lab.js";
import { mapLimit, run as runCommand, runOk, spawnInNetns } from "../src/lab/lab-os.js";
import { planLab, resolveLabOptions } from "../src/lab/topology.js";
import type { LabOptions, LabPlan } from "../src/lab/topology.js";
import { probeFrom } from "../src/netcheck/netcheck.js";
import type { BenchContext, BenchFigures } from "./run.js";

const RULES = 1000;
const ROUNDS = Number(process.env["LAB_THROUGHPUT_ROUNDS"] ?? 7);
const RUN_SECONDS = Number(process.env["LAB_THROUGHPUT_SECONDS"] ?? 4);
const PORT = 5201;
const OVERLAY_MTU = 1450;
const VXLAN_ID = 42;

/** A workload plugged by hand, as the CNI plugin and the agent leave one. */
export interface BareWorkload {
  name: string;
  ns: string;
  host: string;
  ip: string;
}

/**
 * Workloads of `plan` plugged into their hosts without twill: a veth with
 * the host side's MAC ee:ee:ee:ee:ee:ee, proxy ARP and no proxy delay, the
 * workload's /32 with `default via 169.254.1.1`, a host route to it.
 * Addresses 10.65.<host index>.<n>. Returns them in the plan's order.
 */
export async function plugBareWorkloads(
  plan: LabPlan,
  options: { mtu?: number } = {},
): Promise<BareWorkload[]> {
  const byHost = new Map<string, BareWorkload[]>();
  const out = plan.workloads.map((w) => {
    const host = plan.hosts.find((h) => h.name === w.host);
    if (!host) throw new Error(`no host ${w.host}`);
    const list = byHost.get(host.name) ?? [];
    const b: BareWorkload = {
      name: w.name,
      ns: w.ns,
      host: host.ns,
      ip: `10.65.${host.index}.${list.length + 1}`,
    };
    list.push(b);
    byHost.set(host.name, list);
    return b;
  });
  const mtu = options.mtu === undefined ? "" : ` mtu ${options.mtu}`;
  await mapLimit([...byHost.values()], 8, async (list) => {
    const hostNs = list[0]?.host ?? "";
    const hostLines: string[] = [];
    const sysctls: string[] = [];
    list.forEach((w, i) => {
      const itf = `tw${i + 1}`;
      hostLines.push(
        `link add ${itf}${mtu} type veth peer name eth0 netns ${w.ns}`,
        `link set ${itf} address ee:ee:ee:ee:ee:ee up`,
        `route add ${w.ip}/32 dev ${itf} scope link`,
      );
      sysctls.push(`net.ipv4.conf.${itf}.proxy_arp=1`, `net.ipv4.neigh.${itf}.proxy_delay=0`);
    });
    await runOk("ip", ["-n", hostNs, "-batch", "-"], { input: `${hostLines.join("\n")}\n` });
    await runOk("ip", ["netns", "exec", hostNs, "sysctl", "-q", "-w", ...sysctls]);
    await mapLimit(list, 8, (w) =>
      runOk("ip", ["-n", w.ns, "-batch", "-"], {
        input: [
          `addr add ${w.ip}/32 dev eth0`,
          `link set eth0${mtu} up`,
          "route add 169.254.1.1 dev eth0 scope link",
          "route add default via 169.254.1.1 dev eth0",
          "",
        ].join("\n"),
      }),
    );
  });
  return out;
}

/**
 * Static routes on a one-site leaf-spine plan: every ToR and the spine
 * learn the racks' subnets, and (unless `overlay`) every workload's /32.
 * With `overlay`, hosts reach other hosts' workloads through VXLAN instead.
 */
async function staticRoutes(
  plan: LabPlan,
  workloads: readonly BareWorkload[],
  overlay: boolean,
): Promise<void> {
  const spine = plan.routers.find((r) => r.role === "spine");
  if (!spine) throw new Error("static routes: leaf-spine plans only");
  const tors = plan.routers.filter((r) => r.role === "tor");
  const rackOf = (k: number): { subnet: string; uplink: string; spineSide: string } => ({
    subnet: `10.1.${k}.0/24`,
    uplink: `10.1.${100 + k}.2`,
    spineSide: `10.1.${100 + k}.1`,
  });
  const hostOf = (ns: string) => plan.hosts.find((h) => h.ns === ns);
  const lines = new Map<string, string[]>();
  const add = (ns: string, line: string) => lines.set(ns, [...(lines.get(ns) ?? []), line]);
  for (const tor of tors) {
    const k = tor.rack ?? 0;
    for (const other of tors.filter((t) => t !== tor)) {
      add(tor.ns, `route add ${rackOf(other.rack ?? 0).subnet} via ${rackOf(k).spineSide}`);
    }
  }
  for (const tor of tors) {
    const k = tor.rack ?? 0;
    add(spine.ns, `route add ${rackOf(k).subnet} via ${rackOf(k).uplink}`);
  }
  if (!overlay) {
    for (const w of workloads) {
      const host = hostOf(w.host);
      const k = host?.rack ?? 0;
      const hostAddr = host?.ipv4.split("/")[0] ?? "";
      add(spine.ns, `route add ${w.ip}/32 via ${rackOf(k).uplink}`);
      for (const tor of tors) {
        add(
          tor.ns,
          tor.rack === k
            ? `route add ${w.ip}/32 via ${hostAddr}`
            : `route add ${w.ip}/32 via ${rackOf(tor.rack ?? 0).spineSide}`,
        );
      }
    }
  } else {
    // VXLAN between every pair of hosts: one device per host (its MAC made
    // from the host's index), an address on 10.200/16, the other hosts'
    // VTEPs as permanent neighbours and FDB entries, and a route per remote
    // workload through the remote host's VTEP address.
    for (const h of plan.hosts) {
      add(
        h.ns,
        `link add vxlan0 address ${vtepMac(h.index)} type vxlan id ${VXLAN_ID} local ${hostAddress(h.ipv4)} dstport 4789 dev fab0 nolearning`,
      );
      add(h.ns, `addr add ${vtepIp(h.index)}/16 dev vxlan0`);
      add(h.ns, "link set vxlan0 up");
      for (const other of plan.hosts.filter((o) => o !== h)) {
        add(
          h.ns,
          `neigh add ${vtepIp(other.index)} lladdr ${vtepMac(other.index)} dev vxlan0 nud permanent`,
        );
        for (const w of workloads.filter((x) => x.host === other.ns)) {
          add(h.ns, `route add ${w.ip}/32 via ${vtepIp(other.index)} dev vxlan0 onlink`);
        }
      }
    }
  }
  await mapLimit([...lines], 8, ([ns, l]) =>
    runOk("ip", ["-n", ns, "-batch", "-"], { input: `${l.join("\n")}\n` }),
  );
  if (overlay) {
    for (const h of plan.hosts) {
      for (const other of plan.hosts.filter((o) => o !== h)) {
        await runOk("ip", [
          "netns",
          "exec",
          h.ns,
          "bridge",
          "fdb",
          "append",
          vtepMac(other.index),
          "dev",
          "vxlan0",
          "dst",
          hostAddress(other.ipv4),
        ]);
      }
    }
  }
}

const hostAddress = (cidr: string): string => cidr.split("/")[0] ?? cidr;
const vtepIp = (index: number): string => `10.200.${Math.floor(index / 250)}.${(index % 250) + 1}`;
const vtepMac = (index: number): string =>
  `02:00:00:00:${Math.floor(index / 256)
    .toString(16)
    .padStart(2, "0")}:${(index % 256).toString(16).padStart(2, "0")}`;

/** The same fabric as a lab of `options`, without twill: see the header. */
export async function buildBareWorld(
  options: Partial<LabOptions>,
  settings: { dir: string; overlay?: boolean; routes?: boolean },
): Promise<{ plan: LabPlan; workloads: BareWorkload[] }> {
  const plan = planLab(resolveLabOptions(options));
  await buildLabNetwork(plan, { dir: settings.dir, hostNft: false });
  const overlay = settings.overlay ?? false;
  const workloads = await plugBareWorkloads(plan, overlay ? { mtu: OVERLAY_MTU } : {});
  if (settings.routes ?? true) await staticRoutes(plan, workloads, overlay);
  return { plan, workloads };
}

// ---------------------------------------------------------------------------

/** 1,000 rules per direction, of which only the last allows TCP to PORT. */
function benchPolicy(): Resource {
  const rules = (dir: "ingress" | "egress") => {
    const out: Record<string, unknown>[] = [];
    for (let i = 0; i < RULES - 1; i++) {
      const other = `203.0.${Math.floor(i / 250)}.${(i % 250) + 1}/32`;
      const peer =
        i % 3 === 0
          ? { selector: `bench-group == 'g${i % 20}'` }
          : i % 3 === 1
            ? { nets: [other] }
            : { nets: ["198.51.100.0/24"], notNets: [other] };
      const port = { ports: [1000 + i] };
      out.push({
        action: "Allow",
        protocol: "TCP",
        source: dir === "ingress" ? peer : {},
        destination: dir === "ingress" ? port : { ...peer, ...port },
      });
    }
    out.push({ action: "Allow", protocol: "TCP", destination: { ports: [PORT] } });
    return out;
  };
  const r = validateResource({
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name: "bench-1000-rules" },
    spec: {
      selector: "all()",
      types: ["Ingress", "Egress"],
      ingress: rules("ingress"),
      egress: rules("egress"),
    },
  });
  if (!r.ok) throw new Error(`bench policy: ${JSON.stringify(r.errors.slice(0, 3))}`);
  return r.resource;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}

async function tcpState(ns: string, ip: string, port: number): Promise<string> {
  const [o] = await probeFrom(ns, [{ proto: "tcp", addr: ip, port }], { timeoutMs: 1500 });
  if (!o) return "no outcome";
  return o.ok ? "open" : o.detail.startsWith("no connection") ? "dropped" : o.detail;
}

async function iperf(clientNs: string, ip: string): Promise<number> {
  const r = await runCommand(
    "ip",
    [
      "netns",
      "exec",
      clientNs,
      "iperf3",
      "-c",
      ip,
      "-p",
      String(PORT),
      "-t",
      String(RUN_SECONDS + 1),
      "-O",
      "1",
      "-J",
    ],
    { timeoutMs: (RUN_SECONDS + 30) * 1000 },
  );
  if (r.code !== 0)
    throw new Error(`iperf3 to ${ip} failed: ${r.stdout.slice(0, 400)} ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

interface World {
  name: "twill" | "bare" | "overlay";
  client: string;
  server: string;
  ip: string;
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  if (process.getuid?.() !== 0) throw new Error("lab-throughput needs root");
  const root = mkdtempSync(join(tmpdir(), "twl-bench-"));
  const names = { twill: "tptwill", bare: "tpbare", overlay: "tpovl" } as const;
  const topology: Partial<LabOptions> = {
    topology: "leaf-spine",
    racks: 2,
    hosts: 2,
    workloadsPerHost: 1,
  };
  const settings = { stateRoot: root };
  try {
    for (const n of Object.values(names)) await labDown(n, settings);
    const t0 = performance.now();
    const info = await labUp(
      { ...topology, name: names.twill },
      { ...settings, timeoutMs: 120_000 },
    );
    ctx.log(`twill lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const [client, server] = info.workloads;
    if (!client?.ipv4 || !server?.ipv4 || client.host === server.host) {
      throw new Error(`unexpected lab workloads: ${JSON.stringify(info.workloads)}`);
    }
    const bare = await buildBareWorld({ ...topology, name: names.bare }, { dir: root });
    const overlay = await buildBareWorld(
      { ...topology, name: names.overlay },
      { dir: root, overlay: true },
    );
    const worlds: World[] = [
      { name: "twill", client: client.ns, server: server.ns, ip: server.ipv4 },
      {
        name: "bare",
        client: bare.workloads[0]?.ns ?? "",
        server: bare.workloads[1]?.ns ?? "",
        ip: bare.workloads[1]?.ip ?? "",
      },
      {
        name: "overlay",
        client: overlay.workloads[0]?.ns ?? "",
        server: overlay.workloads[1]?.ns ?? "",
        ip: overlay.workloads[1]?.ip ?? "",
      },
    ];
    for (const w of worlds) {
      spawnInNetns(w.server, "iperf3", ["-s", "-p", String(PORT)], {
        logFile: join(root, `iperf3-${w.name}.log`),
      });
    }

    // Before the policy, nothing listens on PORT+1: refused. Once every rule
    // is programmed on both hosts, its SYN is dropped.
    const { store, close } = openLabStore(info);
    try {
      await store.apply(benchPolicy());
    } finally {
      await close();
    }
    const t1 = performance.now();
    for (let i = 0; ; i++) {
      const state = await tcpState(client.ns, server.ipv4, PORT + 1);
      if (state === "dropped") break;
      if (i > 120) throw new Error(`the 1,000-rule policy did not land: port ${PORT + 1} ${state}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    ctx.log(
      `policy with ${RULES} rules per direction in force after ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );
    for (const w of worlds) {
      for (let i = 0; ; i++) {
        const state = await tcpState(w.client, w.ip, PORT);
        if (state === "open") break;
        if (i > 40) throw new Error(`${w.name}: iperf3 server at ${w.ip} not reachable: ${state}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const rulesInKernel = (
      await runOk("ip", [
        "netns",
        "exec",
        info.plan.hosts[1]?.ns ?? "",
        "nft",
        "list",
        "table",
        "inet",
        "twill",
      ])
    )
      .split("\n")
      .filter((l) => /dport/.test(l)).length;
    ctx.log(
      `every world reaches its iperf3 server; h2's twill table has ${rulesInKernel} lines matching ports`,
    );

    const got: Record<World["name"], number[]> = { twill: [], bare: [], overlay: [] };
    const ratiosBare: number[] = [];
    const ratiosOverlay: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = [...worlds.slice(r % 3), ...worlds.slice(0, r % 3)];
      const round: Partial<Record<World["name"], number>> = {};
      for (const w of order) round[w.name] = await iperf(w.client, w.ip);
      const t = round.twill ?? 0;
      const b = round.bare ?? 1;
      const o = round.overlay ?? 1;
      got.twill.push(t);
      got.bare.push(b);
      got.overlay.push(o);
      ratiosBare.push(t / b);
      ratiosOverlay.push(t / o);
      ctx.log(
        `round ${r + 1}/${ROUNDS} (${order.map((w) => w.name).join(", ")}): twill ${t.toFixed(2)}, bare ${b.toFixed(2)}, overlay ${o.toFixed(2)} Gbit/s`,
      );
    }
    return {
      rules_per_direction: RULES,
      rounds: ROUNDS,
      run_seconds: RUN_SECONDS,
      path: "workload-h1-tor1-spine1-tor2-h2-workload",
      twill_gbit_s: Number(median(got.twill).toFixed(2)),
      bare_gbit_s: Number(median(got.bare).toFixed(2)),
      overlay_gbit_s: Number(median(got.overlay).toFixed(2)),
      ratio_bare: Number(median(ratiosBare).toFixed(3)),
      ratio_overlay: Number(median(ratiosOverlay).toFixed(3)),
    };
  } finally {
    for (const n of Object.values(names)) await labDown(n, settings).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
}
