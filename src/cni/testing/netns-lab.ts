// A closed world of network namespaces for the CNI plugin's real tests and
// its benchmark. Nothing here touches the machine's own namespace: every
// interface, route and sysctl is inside a namespace this lab created, all
// named <prefix>-..., with prefix "twt-<random>", and close() deletes them.
//
//   test process (machine's namespace) ── etcd on 127.0.0.1:<port>, and on
//        │ its unix socket (a file: reachable from every namespace)
//   ┌────┴───────────────── host namespace <prefix>-h<i> ──────────────────┐
//   │ up0 192.168.254.1/24 fd00:254::1/64 ◄─veth─► up1   (both ends here)   │
//   │ default via 192.168.254.2 dev up0, ::/0 via fd00:254::2 (never left)  │
//   │ node dist/src/cni/main.cjs ... run here (nsenter --net), as a runtime  │
//   │ tw<hash> ◄─veth─► eth0 in <prefix>-w<n> (a workload namespace)        │
//   └───────────────────────────────────────────────────────────────────────┘
//
// The default route matters: the host answers the workload's ARP for
// 169.254.1.1 by proxy ARP only with a route covering that address.
//
// With an agent (startAgent), `twill agent` runs in the host namespace as
// it would on a real host, its etcd client on the same socket. Plugins and
// agents talk to etcd itself, with no relay process in between: a relay
// would add its own scheduling to every request's time (the benchmarks
// time CNI ADDs that wait for the agent).
//
// Every process the lab starts (agents, servers) is killed by
// close(), and so is anything else still running in one of its namespaces.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync } from "node:fs";
import { mkdtemp, rm, symlink, unlink, writeFile } from "node:fs/promises";
import type { ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildBundle, bundleIsCurrent } from "../build-bundle.js";
import { collectJsonLines } from "../../util/json-lines.js";

const exec = promisify(execFile);

/** The plugin as built: dist/src/cni/main.cjs ($TWILL_TEST_CNI_MAIN to try another build). */
export const PLUGIN_MAIN =
  process.env["TWILL_TEST_CNI_MAIN"] ?? fileURLToPath(new URL("../main.cjs", import.meta.url));
/** The twill CLI as built (for `twill agent`). */
export const TWILL_MAIN = fileURLToPath(new URL("../../bin/twill.js", import.meta.url));

export const UPLINK_V4 = "192.168.254.1";
export const UPLINK_V6 = "fd00:254::1";

/** Why the real-namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  if (!["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].some((p) => existsSync(p))) {
    return "needs iproute2";
  }
  if (!existsSync("/usr/bin/nsenter") && !existsSync("/bin/nsenter")) return "needs nsenter";
  if (!existsSync("/usr/bin/etcd")) return "needs etcd";
  return undefined;
}

export interface PluginCall {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: Record<string, unknown> | undefined;
  ms: number;
}

/** `twill agent` running in a host namespace of the lab. */
export interface LabAgent {
  /** Its JSON log lines so far, parsed. */
  readonly lines: Record<string, unknown>[];
  /** The first log line (already logged or still to come) that `pred` accepts. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, ms?: number): Promise<unknown>;
  /** SIGTERM, and its exit code. */
  stop(): Promise<number | null>;
}

export interface StartAgentOptions {
  /** Its Node name (--node-name). */
  node: string;
  /** More flags for `twill agent`. */
  args?: readonly string[];
}

export interface NetnsLab {
  readonly prefix: string;
  /** `unix://...`: the etcd endpoint as seen from inside the lab. */
  readonly etcdEndpoint: string;
  /** A host namespace with its uplink; returns its name. */
  addHost(): Promise<string>;
  /** A workload namespace; returns its path (CNI_NETNS). */
  addWorkload(): Promise<string>;
  /** Delete a namespace early (e.g. a workload that went away before DEL). */
  deleteNamespace(nameOrPath: string): Promise<void>;
  /** `ip <args>` inside a namespace (name or path). */
  ip(ns: string, args: readonly string[]): Promise<string>;
  /** Run a command inside a namespace. */
  run(
    ns: string,
    cmd: string,
    args: readonly string[],
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Run the plugin in `host` as a runtime does. `as` names the executable (e.g. "twill-ipam"). */
  plugin(
    host: string,
    env: Record<string, string>,
    config: unknown,
    options?: { as?: string },
  ): Promise<PluginCall>;
  /**
   * Whether `ns` can open a TCP connection to `address`:`port` in `host`,
   * where a one-shot server answers "pong" (a real round trip through the
   * veth, the gateway trick and the host's routes).
   */
  reach(host: string, ns: string, address: string): Promise<string>;
  /** Start a long-running command inside a namespace (killed by close()). */
  spawn(ns: string, cmd: string, args: readonly string[]): ChildProcess;
  /**
   * Starts `twill agent` in `host` against the lab's etcd and resolves once
   * it has programmed the dataplane for the first time.
   */
  startAgent(host: string, options: StartAgentOptions): Promise<LabAgent>;
  /** TCP servers in `ns` on `ports` that greet every connection with "hi". */
  serve(ns: string, ports: readonly number[]): Promise<void>;
  /**
   * One attempt (no retry) from `ns` to each "address:port" at once: true
   * where the greeting came back within `timeoutMs` (default 1500).
   */
  probe(
    ns: string,
    targets: readonly string[],
    timeoutMs?: number,
  ): Promise<Record<string, boolean>>;
  /** Namespaces of this lab still present. */
  namespaces(): Promise<string[]>;
  close(): Promise<void>;
}

/** TCP greeters on the ports given: "hi\\n" to every connection; "ready" once listening. */
const SERVER = `
const net = require("node:net");
const ports = process.argv.slice(1).map(Number);
let left = ports.length;
for (const port of ports) {
  net.createServer((s) => { s.on("error", () => {}); s.end("hi\\n"); })
    .listen(port, "::", () => { if (--left === 0) process.stdout.write("ready\\n"); });
}
`;

/** Connects to every "address:port" in argv[1] (JSON) at once; prints {"address:port": true|false}. */
const PROBE = `
const net = require("node:net");
const [targets, ms] = [JSON.parse(process.argv[1]), Number(process.argv[2])];
Promise.all(targets.map((t) => new Promise((resolve) => {
  const i = t.lastIndexOf(":");
  const s = net.connect({ host: t.slice(0, i), port: Number(t.slice(i + 1)) });
  const done = (ok) => { s.destroy(); resolve([t, ok]); };
  s.setTimeout(ms, () => done(false));
  s.on("data", (d) => done(String(d).startsWith("hi")));
  s.on("error", () => done(false));
}))).then((r) => process.stdout.write(JSON.stringify(Object.fromEntries(r))));
`;

/** Resolves when `child` prints a line equal to `want`; rejects when it exits first or after `ms`. */
function lineFrom(child: ChildProcess, want: string, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => finish(new Error(`${what}: not ready within ${ms} ms`)), ms);
    const onOut = (d: Buffer): void => {
      out += d.toString("utf8");
      if (out.split("\n").includes(want)) finish();
    };
    const onErr = (d: Buffer): void => {
      err += d.toString("utf8");
    };
    const onExit = (code: number | null): void =>
      finish(new Error(`${what} exited (${code}) before it was ready: ${err.slice(-500)}`));
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onOut);
      child.stderr?.off("data", onErr);
      child.off("exit", onExit);
      if (error) reject(error);
      else resolve();
    };
    child.stdout?.on("data", onOut);
    child.stderr?.on("data", onErr);
    child.once("exit", onExit);
  });
}

async function listNamespaces(): Promise<string[]> {
  const { stdout } = await exec("ip", ["netns", "list"]);
  return stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "");
}

/**
 * Starts a lab whose plugins and agents reach etcd on its unix socket
 * (`etcd.socketEndpoint`, `unix:///...`). The plugin runs from its bundle:
 * built again first when a plain `tsc` has left it behind the modules.
 */
export async function startNetnsLab(etcd: { socketEndpoint: string }): Promise<NetnsLab> {
  if (process.env["TWILL_TEST_CNI_MAIN"] === undefined && !bundleIsCurrent()) await buildBundle();
  const prefix = `twt-${randomBytes(3).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const children = new Set<ChildProcess>();
  let pluginCalls = 0;
  let hosts = 0;
  let workloads = 0;
  const nameOf = (ns: string): string => (ns.startsWith("/") ? (ns.split("/").pop() ?? ns) : ns);

  const run = async (
    ns: string,
    cmd: string,
    args: readonly string[],
  ): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await exec("ip", ["netns", "exec", nameOf(ns), cmd, ...args]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return {
        code: typeof e.code === "number" ? e.code : 1,
        stdout: e.stdout ?? "",
        stderr: e.stderr ?? "",
      };
    }
  };
  const spawnIn = (ns: string, cmd: string, args: readonly string[]): ChildProcess => {
    // nsenter, not `ip netns exec`: the mounts stay as they are.
    const child = spawn("nsenter", [`--net=/var/run/netns/${nameOf(ns)}`, cmd, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    child.once("exit", () => children.delete(child));
    return child;
  };
  const ip = async (ns: string, args: readonly string[]): Promise<string> => {
    const { stdout } = await exec("ip", ["-n", nameOf(ns), ...args]);
    return stdout;
  };
  const sysctl = async (ns: string, path: string, value: string): Promise<void> => {
    await exec("ip", [
      "netns",
      "exec",
      nameOf(ns),
      "sh",
      "-c",
      `echo ${value} > /proc/sys/net/${path}`,
    ]);
  };

  return {
    prefix,
    etcdEndpoint: etcd.socketEndpoint,
    async addHost() {
      const name = `${prefix}-h${hosts++}`;
      await exec("ip", ["netns", "add", name]);
      await ip(name, ["link", "set", "lo", "up"]);
      await ip(name, ["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
      await ip(name, ["addr", "add", `${UPLINK_V4}/24`, "dev", "up0"]);
      await ip(name, ["-6", "addr", "add", `${UPLINK_V6}/64`, "dev", "up0", "nodad"]);
      await ip(name, ["link", "set", "up0", "up"]);
      await ip(name, ["link", "set", "up1", "up"]);
      await ip(name, ["route", "add", "default", "via", "192.168.254.2", "dev", "up0"]);
      await ip(name, ["-6", "route", "add", "default", "via", "fd00:254::2", "dev", "up0"]);
      await sysctl(name, "ipv4/ip_forward", "1");
      await sysctl(name, "ipv6/conf/all/forwarding", "1");
      return name;
    },
    async addWorkload() {
      const name = `${prefix}-w${workloads++}`;
      await exec("ip", ["netns", "add", name]);
      await ip(name, ["link", "set", "lo", "up"]);
      return `/var/run/netns/${name}`;
    },
    async deleteNamespace(ns) {
      await exec("ip", ["netns", "del", nameOf(ns)]).catch(() => undefined);
    },
    ip,
    run,
    async plugin(host, env, config, options = {}) {
      let main = PLUGIN_MAIN;
      if (options.as !== undefined) {
        main = join(dir, options.as);
        if (!existsSync(main)) await symlink(PLUGIN_MAIN, main);
      }
      // The config is the plugin's stdin as a file: it reads to the end at
      // once. (Through a pipe, the end would come only when this process's
      // event loop next turns, which during a burst of a hundred spawns is
      // seconds later: a delay of the harness, not of the plugin.)
      const input = join(dir, `stdin-${++pluginCalls}`);
      await writeFile(input, typeof config === "string" ? config : JSON.stringify(config));
      const stdin = openSync(input, "r");
      const started = performance.now();
      return new Promise((resolve, reject) => {
        // nsenter, not `ip netns exec`: only the network namespace changes,
        // as when a runtime in the host's namespace runs the plugin.
        let child;
        try {
          child = spawn("nsenter", [`--net=/var/run/netns/${host}`, process.execPath, main], {
            env: { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
            stdio: [stdin, "pipe", "pipe"],
          });
        } finally {
          closeSync(stdin);
          void unlink(input).catch(() => undefined);
        }
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout?.on("data", (c: Buffer) => out.push(c));
        child.stderr?.on("data", (c: Buffer) => err.push(c));
        child.on("error", reject);
        child.on("close", (code) => {
          const stdout = Buffer.concat(out).toString("utf8");
          let json: Record<string, unknown> | undefined;
          try {
            json =
              stdout.trim() === "" ? undefined : (JSON.parse(stdout) as Record<string, unknown>);
          } catch {
            json = undefined;
          }
          resolve({
            exitCode: code ?? 1,
            stdout,
            stderr: Buffer.concat(err).toString("utf8"),
            json,
            ms: performance.now() - started,
          });
        });
      });
    },
    async reach(host, ns, address) {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const server = spawn(
        "ip",
        [
          "netns",
          "exec",
          host,
          process.execPath,
          "-e",
          `const s = require("net").createServer((c) => { c.end("pong"); s.close(); });
           s.listen(${port}, "::", () => console.log("ready"));
           setTimeout(() => process.exit(3), 10000);`,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          server.stdout.once("data", () => resolve());
          server.once("exit", (code) => reject(new Error(`echo server exited with ${code}`)));
        });
        const client = await run(ns, process.execPath, [
          "-e",
          `const c = require("net").connect(${port}, ${JSON.stringify(address)});
           let got = ""; c.on("data", (d) => (got += d)); c.on("end", () => { console.log(got); process.exit(0); });
           c.on("error", (e) => { console.error(e.message); process.exit(1); });
           setTimeout(() => { console.error("timeout"); process.exit(2); }, 5000);`,
        ]);
        return client.code === 0 ? client.stdout.trim() : `failed: ${client.stderr.trim()}`;
      } finally {
        server.kill();
      }
    },
    spawn: spawnIn,
    async startAgent(host, options) {
      const child = spawnIn(host, process.execPath, [
        TWILL_MAIN,
        "--etcd-endpoints",
        etcd.socketEndpoint,
        "agent",
        "--node-name",
        options.node,
        "--node-ipv4",
        `${UPLINK_V4}/24`,
        // One host, no peers: routes between hosts are not what the lab is for.
        "--bgp-enabled",
        "false",
        ...(options.args ?? []),
      ]);
      const lines: Record<string, unknown>[] = [];
      const waiters = new Set<() => void>();
      let stderr = "";
      collectJsonLines(child.stdout, lines, () => {
        for (const w of waiters) w();
      });
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      const exited = new Promise<number | null>((resolve) => {
        child.once("exit", (code) => {
          for (const w of waiters) w();
          resolve(code);
        });
      });
      const waitForLog: LabAgent["waitForLog"] = (pred, ms = 20_000) =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            const found = lines.find(pred);
            if (found !== undefined) return finish(undefined, found);
            if (child.exitCode !== null || child.signalCode !== null) {
              finish(new Error(`the agent exited (${child.exitCode}): ${stderr.slice(-1000)}`));
            }
          };
          const timer = setTimeout(() => {
            const tail = lines.slice(-10).map((l) => JSON.stringify(l));
            finish(new Error(`no such agent log line within ${ms} ms; last:\n${tail.join("\n")}`));
          }, ms);
          const finish = (err?: Error, line?: unknown): void => {
            clearTimeout(timer);
            waiters.delete(check);
            if (err) reject(err);
            else resolve(line);
          };
          waiters.add(check);
          check();
        });
      await waitForLog((l) => l["msg"] === "dataplane programmed (first apply)");
      return {
        lines,
        waitForLog,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
          return exited;
        },
      };
    },
    async serve(ns, ports) {
      const child = spawnIn(ns, process.execPath, ["-e", SERVER, ...ports.map(String)]);
      await lineFrom(child, "ready", 10_000, `servers in ${ns}`);
    },
    async probe(ns, targets, timeoutMs = 1500) {
      const r = await run(ns, process.execPath, [
        "-e",
        PROBE,
        JSON.stringify(targets),
        String(timeoutMs),
      ]);
      if (r.code !== 0) throw new Error(`probe from ${ns} failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, boolean>;
    },
    async namespaces() {
      return (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
    },
    async close() {
      const exits = [...children].map(
        (c) =>
          new Promise<void>((resolve) =>
            c.exitCode !== null ? resolve() : c.once("exit", () => resolve()),
          ),
      );
      for (const c of children) {
        c.ref(); // Held open until they are gone.
        c.kill("SIGTERM");
      }
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
      await Promise.race([Promise.all(exits), timeout]);
      for (const c of children) c.kill("SIGKILL");
      const ours = (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
      for (const name of ours) {
        // Anything still running in our namespaces (a plugin left by a failed test) goes too.
        const { stdout } = await exec("ip", ["netns", "pids", name]).catch(() => ({ stdout: "" }));
        for (const pid of stdout.split("\n").filter((p) => /^\d+$/.test(p))) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // Gone meanwhile.
          }
        }
        await exec("ip", ["netns", "del", name]).catch(() => undefined);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` over `items` with at most `limit` at a time; results in order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, () => worker()));
  return out;
}
