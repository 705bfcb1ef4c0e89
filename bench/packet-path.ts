// packet-path: what twill's table costs a TCP stream. One host namespace
// with two workloads plugged in as the CNI plugin leaves them (veth, /32,
// routes via 169.254.1.1), programmed by the agent's dataplane half
// (src/dataplane/dataplane.ts with the real nft, ip and /proc/sys drivers,
// in a worker process inside the host namespace), and one single-stream
// iperf3 run from workload A to workload B, alternately with twill's table
// and without it (routes and sysctls stay: only the table goes).
//
//   ns A: eth0 10.65.0.1 ── twpa… ┐              ┌ twpb… ── eth0 10.65.0.2 :B (iperf3 -s)
//                                  └─ host ns ───┘
//                                   forward hook: A's egress chain, then B's ingress chain
//
// The policy in the path: A's egress and B's ingress each run through 1,000
// policy rules (one policy of 1,000 rules per direction, IP set, CIDR and
// port matches) of which only the last allows the stream; the others do not
// match it. Every NEW connection's first packet walks all of them (in both
// chains); after that conntrack's fast path (`ct state established,related
// accept` first in the forward chain) lets the flow's packets skip the
// policy chains. That is by design, as in Calico: policy decides per
// connection, not per packet. So the stream pays for the table's base chain
// lookup and conntrack, and the ratio says what that costs.
//
// A check before timing: with the table, A can reach B's port 5201 (the
// last rule allows it) and cannot reach port 5202 (no rule allows it: the
// SYN is dropped, the connection times out instead of being refused).
//
// Figures: with_table_gbit_s and without_table_gbit_s (medians of ROUNDS
// alternating runs of RUN_SECONDS each, first second omitted), ratio =
// median over rounds of (with / without) (target >= 0.95). On a busy
// machine a stream gets whatever CPU is left, so `cpu_efficiency_ratio`
// compares Gbit per CPU-second of iperf3's two processes (where the kernel
// does a veth path's packet work) instead: what the table costs, whatever
// else runs. Without the table the namespace does not track connections at
// all (conntrack hooks register only when a ruleset uses `ct`), so both
// ratios include conntrack's per-packet cost.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CompiledRule, DataplaneMessage, LocalEndpoint } from "../src/calc/messages.js";
import { Dataplane } from "../src/dataplane/dataplane.js";
import { LinkMonitor, ipLinkSource } from "../src/dataplane/link-monitor.js";
import { NetnsPool, netnsUnavailable } from "../src/dataplane/netns-testkit.js";
import type { Netns } from "../src/dataplane/netns-testkit.js";
import { nftCommandKernel } from "../src/dataplane/nft-driver.js";
import { ipRouteTable } from "../src/dataplane/route-driver.js";
import { runCommand } from "../src/dataplane/run-command.js";
import { procSysctls } from "../src/dataplane/sysctl-driver.js";
import { BENCH_SETTINGS } from "./dataplane.js";
import type { BenchContext, BenchFigures } from "./run.js";

const WORKER_FLAG = "--worker";
const RULES = 1000;
const ROUNDS = Number(process.env["PACKET_PATH_ROUNDS"] ?? 9);
const RUN_SECONDS = Number(process.env["PACKET_PATH_SECONDS"] ?? 3);
const PORT = 5201;

const A = { ip: "10.65.0.1", iface: "twpa0000000001" };
const B = { ip: "10.65.0.2", iface: "twpb0000000002" };

// ---------------------------------------------------------------------------
// What the calc would send: two local endpoints, both policies on both.

/** `count` rules of which only the last matches TCP from `from` to `to`:PORT. */
function rules(count: number, dir: "ingress" | "egress", id: string): CompiledRule[] {
  const out: CompiledRule[] = [];
  for (let i = 0; i < count - 1; i++) {
    const other = `203.0.${Math.floor(i / 250)}.${(i % 250) + 1}/32`;
    const peer = dir === "ingress" ? "src" : "dst";
    const match =
      i % 3 === 0
        ? { ipSets: [`set-${i % 20}`] }
        : i % 3 === 1
          ? { nets: [other] }
          : { nets: ["198.51.100.0/24"], notNets: [other] };
    const rule: CompiledRule = {
      action: "Allow",
      protocol: 6,
      src: peer === "src" ? match : {},
      dst:
        peer === "dst"
          ? { ...match, ports: [{ first: 1000 + i, last: 1000 + i }] }
          : { ports: [{ first: 1000 + i, last: 1000 + i }] },
      ruleId: `${id}/${dir}/${i}`,
    };
    out.push(rule);
  }
  const last: CompiledRule =
    dir === "ingress"
      ? {
          action: "Allow",
          protocol: 6,
          src: { ipSets: ["set-clients"] },
          dst: { ports: [{ first: PORT, last: PORT }] },
          ruleId: `${id}/${dir}/${count - 1}`,
        }
      : {
          action: "Allow",
          protocol: 6,
          src: {},
          dst: { nets: [`${B.ip}/32`], ports: [{ first: PORT, last: PORT }] },
          ruleId: `${id}/${dir}/${count - 1}`,
        };
  out.push(last);
  return out;
}

export function packetPathMessages(): DataplaneMessage[] {
  const msgs: DataplaneMessage[] = [];
  for (let s = 0; s < 20; s++) {
    const members = Array.from({ length: 50 }, (_, k) => `203.0.${100 + s}.${k + 1}/32`);
    msgs.push({
      type: "ipset-update",
      ipset: { id: `set-${s}`, kind: "net", selector: `app == "other-${s}"` },
      members,
    });
  }
  msgs.push({
    type: "ipset-update",
    ipset: { id: "set-clients", kind: "net", selector: `app == "client"` },
    members: [`${A.ip}/32`],
  });
  const ingress = "default/pp/knp.default.ingress";
  const egress = "default/pp/knp.default.egress";
  msgs.push(
    {
      type: "policy-update",
      policy: {
        id: ingress,
        tier: "default",
        name: "knp.default.ingress",
        namespace: "pp",
        inbound: rules(RULES, "ingress", ingress),
        outbound: [],
      },
    },
    {
      type: "policy-update",
      policy: {
        id: egress,
        tier: "default",
        name: "knp.default.egress",
        namespace: "pp",
        inbound: [],
        outbound: rules(RULES, "egress", egress),
      },
    },
  );
  const endpoint = (pod: string, w: { ip: string; iface: string }): LocalEndpoint => ({
    id: `workload/pp/${pod}`,
    kind: "workload",
    name: pod,
    namespace: "pp",
    interfaceName: w.iface,
    ipv4Nets: [`${w.ip}/32`],
    ipv6Nets: [],
    allowSpoofedSourcePrefixes: [],
    tiers: [{ name: "default", defaultAction: "Deny", ingress: [ingress], egress: [egress] }],
    forwardTiers: [],
    preDnatTiers: [],
    untrackedTiers: [],
    profileIds: [],
    missingProfiles: [],
  });
  for (const [pod, w] of [
    ["a", A],
    ["b", B],
  ] as const) {
    const ep = endpoint(pod, w);
    msgs.push({ type: "endpoint-update", endpoint: ep });
  }
  for (const [pod, w] of [
    ["a", A],
    ["b", B],
  ] as const) {
    msgs.push({
      type: "route-update",
      route: { dst: `${w.ip}/32`, interfaceName: w.iface, endpointId: `workload/pp/${pod}` },
    });
  }
  msgs.push({ type: "in-sync" });
  return msgs;
}

// ---------------------------------------------------------------------------
// The parent: namespaces, wiring, iperf3, the worker.

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}

/** Lines from a child's stdout, one at a time. */
function lineReader(child: ChildProcess): () => Promise<string> {
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let buffered = "";
  child.stdout?.on("data", (d: Buffer) => {
    buffered += d.toString("utf8");
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return () => {
    const line = lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the worker said nothing for 120 s")), 120_000);
      waiting.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  };
}

/** Connect from inside `ns` to ip:port: "open", "refused" or "timeout". */
async function probe(ns: Netns, ip: string, port: number): Promise<string> {
  const script = `
    const s = require("node:net").connect({ host: ${JSON.stringify(ip)}, port: ${port} });
    const done = (r) => { process.stdout.write(r); s.destroy(); process.exit(0); };
    s.setTimeout(1500, () => done("timeout"));
    s.on("connect", () => done("open"));
    s.on("error", (e) => done(e.code === "ECONNREFUSED" ? "refused" : e.code));`;
  return (await ns.sh(process.execPath, "-e", script)).trim();
}

interface IperfRun {
  gbit_s: number;
  /** Gbit moved per CPU-second of iperf3's client and server processes. */
  gbit_per_cpu_s: number;
}

async function iperf(ns: Netns): Promise<IperfRun> {
  const r = await ns.try(
    "iperf3",
    ["-c", B.ip, "-p", String(PORT), "-t", String(RUN_SECONDS + 1), "-O", "1", "-J"],
    { timeoutMs: (RUN_SECONDS + 30) * 1000 },
  );
  if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(0, 500)} ${r.stderr}`);
  const j = JSON.parse(r.stdout) as {
    end: {
      sum_received: { bits_per_second: number };
      cpu_utilization_percent: { host_total: number; remote_total: number };
    };
  };
  const gbit = j.end.sum_received.bits_per_second / 1e9;
  const cpu = j.end.cpu_utilization_percent;
  // On a veth path the kernel's packet work (softirq) runs mostly in the
  // sender's and receiver's own system time, so this is the path's CPU cost,
  // whatever else the machine is doing.
  return { gbit_s: gbit, gbit_per_cpu_s: gbit / ((cpu.host_total + cpu.remote_total) / 100) };
}

async function plugWorkload(host: Netns, wl: Netns, w: { ip: string; iface: string }) {
  await host.sh(
    "ip",
    "link",
    "add",
    w.iface,
    "type",
    "veth",
    "peer",
    "name",
    "tmp0",
    "netns",
    wl.name,
  );
  await host.sh("ip", "link", "set", w.iface, "address", "ee:ee:ee:ee:ee:ee", "up");
  await wl.sh("ip", "link", "set", "tmp0", "name", "eth0");
  await wl.sh("ip", "addr", "add", `${w.ip}/32`, "dev", "eth0");
  await wl.sh("ip", "link", "set", "eth0", "up");
  await wl.sh("ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link");
  await wl.sh("ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0");
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const why = netnsUnavailable();
  if (why) throw new Error(`packet-path benchmark ${why}`);
  const pool = new NetnsPool();
  let worker: ChildProcess | undefined;
  try {
    const host = await pool.create("pph");
    const a = await pool.create("ppa");
    const b = await pool.create("ppb");
    // An uplink with an address and a default route, as a real host has
    // (proxy ARP for 169.254.1.1 needs a route to it elsewhere).
    await host.try("ip", ["-batch", "-"], {
      input: [
        "link add eth0 type veth peer name eth0p",
        "link set eth0 up",
        "link set eth0p up",
        "addr add 198.18.0.1/24 dev eth0",
        "route add default via 198.18.0.2 dev eth0",
        "",
      ].join("\n"),
    });
    await plugWorkload(host, a, A);
    await plugWorkload(host, b, B);

    // Not host.spawn: the worker reads its commands from stdin.
    const child = spawn(
      "ip",
      ["netns", "exec", host.name, process.execPath, fileURLToPath(import.meta.url), WORKER_FLAG],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    worker = child;
    const closed = new Promise((resolve) => child.once("close", resolve));
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const next = lineReader(child);
    const say = async (command: string, want: string) => {
      child.stdin?.write(`${command}\n`);
      const line = await next().catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; worker stderr: ${stderr.slice(-2000)}`);
      });
      if (!line.startsWith(want)) throw new Error(`worker: ${line} ${stderr.slice(-2000)}`);
      return line;
    };
    ctx.log(await say("on", "on"));

    b.spawn("iperf3", ["-s", "-p", String(PORT)]);
    for (let i = 0; ; i++) {
      const state = await probe(a, B.ip, PORT);
      if (state === "open") break;
      if (i > 50) throw new Error(`B's iperf3 is not reachable from A: ${state}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const denied = await probe(a, B.ip, PORT + 1);
    if (denied !== "timeout") {
      throw new Error(`A reached B:${PORT + 1} (${denied}), which no rule allows`);
    }
    ctx.log(`with the table: A → B:${PORT} open, A → B:${PORT + 1} dropped by policy`);

    const withTable: number[] = [];
    const without: number[] = [];
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which goes first, so a drift in the machine's load favours neither.
      const order = r % 2 === 0 ? (["on", "off"] as const) : (["off", "on"] as const);
      const got: Partial<Record<"on" | "off", IperfRun>> = {};
      for (const mode of order) {
        await say(mode, mode);
        got[mode] = await iperf(a);
      }
      const on = got.on!;
      const off = got.off!;
      withTable.push(on.gbit_s);
      without.push(off.gbit_s);
      ratios.push(on.gbit_s / off.gbit_s);
      cpuRatios.push(on.gbit_per_cpu_s / off.gbit_per_cpu_s);
      ctx.log(
        `round ${r + 1}/${ROUNDS}: with table ${on.gbit_s.toFixed(2)} Gbit/s (${on.gbit_per_cpu_s.toFixed(2)} per CPU-s), without ${off.gbit_s.toFixed(2)} Gbit/s (${off.gbit_per_cpu_s.toFixed(2)} per CPU-s), ratio ${(on.gbit_s / off.gbit_s).toFixed(3)}`,
      );
    }
    await say("quit", "bye");
    await closed;
    return {
      rules_per_direction: RULES,
      rounds: ROUNDS,
      run_seconds: RUN_SECONDS,
      with_table_gbit_s: Number(median(withTable).toFixed(2)),
      without_table_gbit_s: Number(median(without).toFixed(2)),
      ratio: Number(median(ratios).toFixed(3)),
      cpu_efficiency_ratio: Number(median(cpuRatios).toFixed(3)),
    };
  } finally {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const w = worker;
      const gone = new Promise((resolve) => w.once("exit", resolve));
      w.kill("SIGKILL");
      await gone;
    }
    await pool.cleanup();
  }
}

// ---------------------------------------------------------------------------
// The worker, inside the host namespace: "on" programs everything (the
// table re-created when it is gone), "off" deletes only the table.

async function worker(): Promise<void> {
  const stop = new AbortController();
  const dp: Dataplane = new Dataplane(
    {
      nft: nftCommandKernel(runCommand),
      routes: ipRouteTable(runCommand),
      sysctls: procSysctls(),
      isUp: (name) => links.isUp(name),
    },
    BENCH_SETTINGS,
  );
  const links = new LinkMonitor(ipLinkSource(runCommand), {
    refreshIntervalMs: 0,
    onChange: (name, link) => dp.onLinkChange(name, link),
  });
  const running = await links.start(stop.signal);
  dp.onMessages(packetPathMessages());
  const say = (line: string) => process.stdout.write(`${line}\n`);
  let buffered = "";
  process.stdin.setEncoding("utf8");
  try {
    for await (const chunk of process.stdin) {
      buffered += chunk as string;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const command = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (command === "on") {
          dp.requestNftResync();
          const r = await dp.apply();
          const states = [...r.endpoints.values()].map((e) => `${e.name}=${e.state}`).join(" ");
          say(`on: nft ${r.nft.wrote} (${r.nft.bytes} bytes), endpoints ${states}`);
        } else if (command === "off") {
          const r = await runCommand("nft", ["delete", "table", "inet", "twill"]);
          say(`off ${r.code}`);
        } else if (command === "quit") {
          say("bye");
          return;
        }
      }
    }
  } finally {
    stop.abort();
    await running.done;
    await runCommand("nft", ["delete", "table", "inet", "twill"]);
  }
}

// Run as the worker only when this very file is the program (the other
// benchmark imports this one's exports).
if (process.argv[2] === WORKER_FLAG && process.argv[1] === fileURLToPath(import.meta.url)) {
  worker().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
