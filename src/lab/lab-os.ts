// The lab's access to the OS: running commands (in a namespace or not),
// starting long-lived processes detached, finding and ending processes.
// Every network change goes through `ip -n <lab namespace>` or
// `ip netns exec <lab namespace>`: nothing here changes the machine's own
// network namespace.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { TwillError } from "../util/errors.js";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  signal?: AbortSignal;
  cwd?: string;
}

/** Runs a command to completion; never throws for a non-zero exit (see runOk). */
export function run(
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      child.kill("SIGKILL");
    };
    if (options.timeoutMs !== undefined) timer = setTimeout(kill, options.timeoutMs);
    options.signal?.addEventListener("abort", kill, { once: true });
    child.on("error", (e) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", kill);
      reject(new TwillError("Unavailable", `cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", kill);
      resolve({
        code: code ?? (sig !== null ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

/** Runs a command and throws TwillError "Unavailable" with its stderr when it fails. */
export async function runOk(
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    const detail = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-6).join("\n");
    throw new TwillError(
      "Unavailable",
      `${cmd} ${args.slice(0, 6).join(" ")}${args.length > 6 ? " ..." : ""} failed (exit ${r.code}): ${detail}`,
    );
  }
  return r.stdout;
}

/** Every named network namespace. */
export async function listNetns(): Promise<string[]> {
  const out = await runOk("ip", ["netns", "list"]);
  return out
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "");
}

/** Pids of the processes in a named namespace ([] when it is gone). */
export async function netnsPids(ns: string): Promise<number[]> {
  const r = await run("ip", ["netns", "pids", ns]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isSafeInteger(n) && n > 0);
}

export interface DetachedOptions {
  /** stdout and stderr are appended here. */
  logFile: string;
  cwd?: string;
  env?: Record<string, string | undefined>;
}

/**
 * Starts `cmd` inside namespace `ns` as a process of its own session, its
 * output to a log file: it outlives `twill lab up`. `ip netns exec` execs
 * the command, so the pid returned is the command's.
 */
export function spawnInNetns(
  ns: string,
  cmd: string,
  args: readonly string[],
  options: DetachedOptions,
): number {
  const fd = openSync(options.logFile, "a");
  try {
    const child = spawn("ip", ["netns", "exec", ns, cmd, ...args], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: options.env ?? process.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    child.on("error", () => undefined);
    child.unref();
    if (child.pid === undefined) {
      throw new TwillError("Unavailable", `cannot start ${cmd} in namespace ${ns}`);
    }
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** True while the process exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    // "<pid> (<comm>) <state> ...": comm may hold spaces, the state follows the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * Runs a command that daemonizes (FRR's -d) with its output appended to a
 * log file, and resolves to its exit code once the foreground part exits.
 * Pipes would keep us waiting as long as the daemon held them.
 */
export function runLogged(
  cmd: string,
  args: readonly string[],
  options: { logFile: string; cwd?: string },
): Promise<number> {
  const fd = openSync(options.logFile, "a");
  try {
    const child = spawn(cmd, args, {
      stdio: ["ignore", fd, fd],
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    return new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", (code) => resolve(code ?? 1));
    });
  } finally {
    closeSync(fd);
  }
}

/** The command line of a process, "" when it is gone. */
export function processCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/** Every process whose command line mentions `needle` (e.g. a lab's state dir). */
export async function pidsMentioning(needle: string): Promise<number[]> {
  const { readdir } = await import("node:fs/promises");
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) continue;
    if (processCmdline(pid).includes(needle)) pids.push(pid);
  }
  return pids;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone already.
  }
}

/** A GET over a unix socket (etcd's client socket); resolves to status and body. */
export function unixGet(
  socketPath: string,
  path: string,
  timeoutMs = 1000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET", timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new TwillError("Aborted", "aborted"));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new TwillError("Aborted", "aborted"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Runs `fn` over `items`, at most `limit` at a time; results in order; first error wins after all settle. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T, i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
  return out;
}

/**
 * A hint when the kernel's neighbour tables are (nearly) full. They are
 * shared by every network namespace of the machine and capped by
 * gc_thresh3 (1024 by default, settable only from the machine's own
 * namespace): many namespaces at once (big labs, tests in parallel) exhaust
 * them, and then new neighbours fail (ENOBUFS) and nothing on a fresh link
 * answers. "" when there is room.
 */
export function neighbourTableHint(): string {
  const hints: string[] = [];
  for (const [family, stat, thresh] of [
    ["ARP", "/proc/net/stat/arp_cache", "/proc/sys/net/ipv4/neigh/default/gc_thresh3"],
    ["NDP", "/proc/net/stat/ndisc_cache", "/proc/sys/net/ipv6/neigh/default/gc_thresh3"],
  ] as const) {
    try {
      const entries = Number.parseInt(
        readFileSync(stat, "utf8").split("\n")[1]?.trim().split(/\s+/)[0] ?? "",
        16,
      );
      const max = Number(readFileSync(thresh, "utf8").trim());
      if (Number.isFinite(entries) && Number.isFinite(max) && entries >= max * 0.95) {
        hints.push(
          `the machine's ${family} table is full (${entries} entries, gc_thresh3 ${max}, shared by every network namespace): too many namespaces in use at once`,
        );
      }
    } catch {
      // No such table here.
    }
  }
  return hints.length === 0 ? "" : ` (${hints.join("; ")})`;
}
