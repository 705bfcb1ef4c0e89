// One twill host in network namespaces, for end-to-end tests of the real
// agent: a throw-away etcd, a "host" namespace running `twill agent`, workload
// namespaces wired to it by hand the way the CNI plugin wires them, and
// optionally an "outside" namespace behind the host's uplink (a stand-in for
// the rest of the world, where NAT outgoing and host endpoints are seen).
// Nothing touches the machine's own namespace: etcd listens on its loopback
// and a relay through a unix socket (a file, reachable from every namespace)
// gives the host namespace its own 127.0.0.1:2379.
//
//   test process ── etcd 127.0.0.1:N ◄── unix socket ◄── relay 127.0.0.1:2379 ┐
//                                                                             │
//   outside: ext0 192.168.254.2/24 fd00:254::2/64       host: twill agent ────┘
//            lo 203.0.113.10 2001:db8:ff::10  ◄─veth─►  up0 192.168.254.1/24 fd00:254::1/64
//            (no route back to the pools)                default via 192.168.254.2
//                                                        tw<x> ◄─veth─► eth0 in each workload
//   workload: eth0 <v4>/32 [<v6>/128]; 169.254.1.1 dev eth0 scope link;
//             default via 169.254.1.1; ::/0 via fe80::ecee:eeff:feee:eeee (the host
//             side's link-local address, from its MAC ee:ee:ee:ee:ee:ee)
//
// Without `outside`, both ends of the uplink stay in the host: the default
// route still covers 169.254.1.1, which proxy ARP needs.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EtcdBackend } from "../datastore/etcd-backend.js";
import { startEtcd } from "../datastore/etcd-server.js";
import type { EtcdServer } from "../datastore/etcd-server.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { NetnsPool } from "../dataplane/netns-testkit.js";
import type { Netns } from "../dataplane/netns-testkit.js";
import { collectJsonLines } from "../util/json-lines.js";

export const TWILL_MAIN = fileURLToPath(new URL("../bin/twill.js", import.meta.url));

export const UPLINK = {
  hostV4: "192.168.254.1",
  hostV6: "fd00:254::1",
  outsideV4: "192.168.254.2",
  outsideV6: "fd00:254::2",
  /** Addresses of the outside namespace that are in no pool. */
  worldV4: "203.0.113.10",
  worldV6: "2001:db8:ff::10",
} as const;

/** The host side's link-local address (EUI-64 of ee:ee:ee:ee:ee:ee): the workloads' IPv6 gateway. */
export const IPV6_GATEWAY = "fe80::ecee:eeff:feee:eeee";

export interface WorkloadWiring {
  /** Label of the namespace (`<prefix>-<label>`). */
  label: string;
  /** Host-side interface name. */
  iface: string;
  ipv4: string;
  ipv6?: string;
}

/** `twill agent` running in the host namespace. */
export interface AgentRun {
  readonly child: ChildProcess;
  /** Parsed JSON log lines so far. */
  readonly lines: Record<string, unknown>[];
  readonly exited: Promise<number | null>;
}

export interface HostLab {
  readonly pool: NetnsPool;
  readonly etcd: EtcdServer;
  readonly store: ResourceStore;
  readonly host: Netns;
  readonly outside: Netns | undefined;
  /** The Node name the agent runs as. */
  readonly node: string;
  /** A workload namespace, wired to the host. */
  wire(w: WorkloadWiring): Promise<Netns>;
  /** Starts `twill agent` in the host (with BGP off), logging into `lines`. */
  startAgent(extraArgs?: readonly string[]): AgentRun;
  /** The HTTP status code of the agent's `path` (/readyz …), "000" when it does not answer. */
  httpStatus(path: string): Promise<string>;
  /** Polls `pred` every 100 ms; the error names `what` and ends with the log tail. */
  until(what: string, pred: () => Promise<boolean>, ms?: number): Promise<void>;
  /** The last `n` log lines of the latest agent run, one JSON per line. */
  logTail(n?: number): string;
  /** Every agent run's log, runs separated by "---". */
  allLogs(): string;
  close(): Promise<void>;
}

export interface HostLabOptions {
  /** Node name (default "host-1"). */
  node?: string;
  /** Put the uplink's far end in an "outside" namespace (default: both ends in the host). */
  outside?: boolean;
  /** Port of the agent's HTTP server in the host namespace (default 9099). */
  healthPort?: number;
}

/** Resolves with the first stdout line that `pred` accepts; rejects after `ms` or on exit. */
export function lineOf(
  child: ChildProcess,
  pred: (line: string) => boolean,
  ms: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    let err = "";
    const t = setTimeout(
      () => reject(new Error(`no matching output within ${ms} ms; got: ${buf.slice(-500)}`)),
      ms,
    );
    child.stderr?.on("data", (d: Buffer) => (err += d.toString("utf8")));
    child.once("close", (code) => {
      clearTimeout(t);
      reject(new Error(`exited (${code}) before the expected output: ${err.slice(-500)}`));
    });
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      const found = buf.split("\n").find(pred);
      if (found !== undefined) {
        clearTimeout(t);
        resolve(found);
      }
    });
  });
}

/** host-namespace side of the etcd relay: 127.0.0.1:port → the unix socket. */
const RELAY = `
const net = require("node:net");
const [sock, port] = [process.argv[1], Number(process.argv[2])];
net.createServer((c) => {
  const u = net.connect(sock);
  c.pipe(u); u.pipe(c);
  c.on("error", () => u.destroy()); u.on("error", () => c.destroy());
}).listen(port, "127.0.0.1", () => process.stdout.write("ready\\n"));
`;

/** Sets up etcd, the host (and outside) namespaces and the relay; the agent is started later. */
export async function startHostLab(options: HostLabOptions = {}): Promise<HostLab> {
  const node = options.node ?? "host-1";
  const healthPort = options.healthPort ?? 9099;
  const pool = new NetnsPool();
  const runs: AgentRun[] = [];
  const sockets = new Set<Socket>();
  let etcd: EtcdServer | undefined;
  let store: ResourceStore | undefined;
  let unixRelay: Server | undefined;
  let sockDir: string | undefined;

  const close = async () => {
    for (const run of runs) {
      if (run.child.exitCode === null && run.child.signalCode === null) {
        run.child.kill("SIGTERM");
        const killer = setTimeout(() => run.child.kill("SIGKILL"), 5000);
        await run.exited;
        clearTimeout(killer);
      }
    }
    await pool.cleanup();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) =>
      unixRelay ? unixRelay.close(() => resolve()) : resolve(),
    );
    if (sockDir) rmSync(sockDir, { recursive: true, force: true });
    await store?.backend.close();
    await etcd?.stop();
  };

  try {
    etcd = await startEtcd();
    store = new ResourceStore(new EtcdBackend({ endpoints: [etcd.endpoint] }));
    const host = await pool.create("host");
    const outside = options.outside ? await pool.create("outside") : undefined;

    // The relay: unix socket here → etcd; TCP in the host namespace → the socket.
    sockDir = mkdtempSync(join(tmpdir(), "twt-relay-"));
    const sock = join(sockDir, "etcd.sock");
    const etcdPort = Number(new URL(etcd.endpoint).port);
    unixRelay = createServer((c) => {
      const u = createConnection({ host: "127.0.0.1", port: etcdPort });
      for (const s of [c, u]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
      }
      c.pipe(u);
      u.pipe(c);
      c.on("error", () => u.destroy());
      u.on("error", () => c.destroy());
    });
    await new Promise<void>((resolve) => unixRelay?.listen(sock, resolve));
    const relay = host.spawn(process.execPath, ["-e", RELAY, sock, "2379"]);
    await lineOf(relay, (l) => l === "ready", 10_000);

    // The uplink.
    await pool.veth(host, "up0", outside, outside ? "ext0" : "up1");
    await host.sh("ip", "addr", "add", `${UPLINK.hostV4}/24`, "dev", "up0");
    await host.sh("ip", "-6", "addr", "add", `${UPLINK.hostV6}/64`, "dev", "up0", "nodad");
    await host.sh("ip", "link", "set", "up0", "up");
    if (outside) {
      await outside.sh("ip", "addr", "add", `${UPLINK.outsideV4}/24`, "dev", "ext0");
      await outside.sh("ip", "-6", "addr", "add", `${UPLINK.outsideV6}/64`, "dev", "ext0", "nodad");
      await outside.sh("ip", "link", "set", "ext0", "up");
      await outside.sh("ip", "addr", "add", `${UPLINK.worldV4}/32`, "dev", "lo");
      await outside.sh("ip", "-6", "addr", "add", `${UPLINK.worldV6}/128`, "dev", "lo");
    } else {
      await host.sh("ip", "link", "set", "up1", "up");
    }
    await host.sh("ip", "route", "add", "default", "via", UPLINK.outsideV4, "dev", "up0");
    await host.sh("ip", "-6", "route", "add", "default", "via", UPLINK.outsideV6, "dev", "up0");

    const theStore = store;
    const theEtcd = etcd;
    const health = `http://127.0.0.1:${healthPort}`;
    const lab: HostLab = {
      pool,
      etcd: theEtcd,
      store: theStore,
      host,
      outside,
      node,
      async wire(w) {
        const ns = await pool.create(w.label);
        await pool.veth(host, w.iface, ns, "eth0");
        // Before the link comes up: the link-local gateway address is usable at once.
        await host.sh("sysctl", "-qw", `net.ipv6.conf.${w.iface}.accept_dad=0`);
        await host.sh("ip", "link", "set", w.iface, "address", "ee:ee:ee:ee:ee:ee", "up");
        await ns.sh("ip", "addr", "add", `${w.ipv4}/32`, "dev", "eth0");
        if (w.ipv6 !== undefined) {
          await ns.sh("ip", "-6", "addr", "add", `${w.ipv6}/128`, "dev", "eth0", "nodad");
        }
        await ns.sh("ip", "link", "set", "eth0", "up");
        await ns.sh("ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link");
        await ns.sh("ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0");
        if (w.ipv6 !== undefined) {
          await ns.sh("ip", "-6", "route", "add", "default", "via", IPV6_GATEWAY, "dev", "eth0");
        }
        return ns;
      },
      startAgent(extraArgs = []) {
        const child = host.spawn(process.execPath, [
          TWILL_MAIN,
          "--etcd-endpoints",
          "http://127.0.0.1:2379",
          "agent",
          "--node-name",
          node,
          "--node-ipv4",
          `${UPLINK.hostV4}/24`,
          "--bgp-enabled",
          "false",
          "--health-port",
          String(healthPort),
          "--min-apply-interval",
          "20ms",
          "--log-severity-screen",
          "Debug",
          ...extraArgs,
        ]);
        const lines: Record<string, unknown>[] = [];
        collectJsonLines(child.stdout, lines);
        let stderr = "";
        child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
        const exited = new Promise<number | null>((resolve) =>
          child.once("close", (code) => {
            if (code !== 0 && stderr) lines.push({ msg: "stderr", stderr });
            resolve(code);
          }),
        );
        const run = { child, lines, exited };
        runs.push(run);
        return run;
      },
      async httpStatus(path) {
        const r = await host.try("curl", [
          "-s",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `${health}${path}`,
        ]);
        return r.stdout;
      },
      async until(what, pred, ms = 10_000) {
        const end = Date.now() + ms;
        while (!(await pred())) {
          if (Date.now() > end) {
            throw new Error(`timed out waiting for ${what}\nagent log:\n${lab.logTail()}`);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      logTail(n = 15) {
        return (runs.at(-1)?.lines ?? [])
          .slice(-n)
          .map((l) => JSON.stringify(l))
          .join("\n");
      },
      allLogs() {
        return runs.map((r) => r.lines.map((l) => JSON.stringify(l)).join("\n")).join("\n---\n");
      },
      close,
    };
    return lab;
  } catch (err) {
    await close();
    throw err;
  }
}
