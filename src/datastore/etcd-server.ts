// Start a throwaway single-member etcd for tests and demos: free loopback
// ports, a fresh temporary data dir, healthy in well under a second.
//
// Nothing may outlive its owner, even when a test crashes or is killed. So
// etcd does not run as our direct child but under a small /bin/sh watchdog
// whose stdin is a pipe from this process:
//
//   node ──stdin pipe──► sh watchdog ──► etcd (data dir in /tmp/twill-etcd-*)
//
// When the pipe closes — stop() closes it, and the kernel closes it when this
// process exits for any reason, SIGKILL included — the watchdog sends etcd
// SIGTERM, waits for it, removes the data dir and exits. The watchdog ignores
// SIGINT so a Ctrl-C to the process group cannot skip the removal, and stops
// writing to its own pipes so a dead reader (SIGPIPE) cannot skip it either. The child
// and its pipes are unref'd: a forgotten stop() does not keep a test process
// alive, and the exit then cleans up as above.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TwillError } from "../util/errors.js";

export const DEFAULT_ETCD_BINARY = "/usr/bin/etcd";

export interface EtcdServer {
  /** The client URL, e.g. `http://127.0.0.1:40123`. */
  endpoint: string;
  /**
   * The same clients' service on a unix socket, `unix:///tmp/twill-etcd-…/localhost:40123`:
   * reachable from every network namespace (a socket file is not bound to
   * one), so test hosts in namespaces reach etcd directly, as a real host
   * reaches its etcd, with no relay process in between.
   */
  socketEndpoint: string;
  /** The temporary data dir (removed by stop()). */
  dataDir: string;
  /** The etcd process id. */
  pid: number;
  /** Kill etcd and remove its data dir; safe to call more than once. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Aborting during start-up fails the start; aborting later stops etcd. */
  signal?: AbortSignal;
  /** The etcd binary (default /usr/bin/etcd). */
  binary?: string;
  /** How long to wait for etcd to report healthy (default 10000 ms). */
  startTimeoutMs?: number;
}

const WATCHDOG = `
trap '' INT
dir=$1; shift
"$@" &
pid=$!
trap 'kill "$pid" 2>/dev/null' TERM HUP
echo "$pid"
# Our own stdout and stderr may outlive their reader: writing there (even the
# shell's "Terminated" notice) must not kill us before the clean-up.
exec 1>/dev/null 2>/dev/null
trap '' PIPE
exec 3<&0
( while read -r _; do :; done; kill "$pid" 2>/dev/null ) <&3 &
watcher=$!
exec 3<&-
while :; do
  wait "$pid"; rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
kill "$watcher" 2>/dev/null
rm -rf "$dir"
exit "$rc"
`;

/** Start etcd; see the file header for the clean-up guarantees. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  const binary = options.binary ?? DEFAULT_ETCD_BINARY;
  try {
    accessSync(binary, constants.X_OK);
  } catch (err) {
    throw new TwillError(
      "Unavailable",
      `cannot run etcd: "${binary}" is missing or not executable (install the Debian package etcd-server)`,
      { cause: err },
    );
  }
  // Ports are found free and then handed to etcd, so another process may grab
  // one in between: retry with fresh ports when etcd reports the address in use.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binary, options);
    } catch (err) {
      const inUse = err instanceof Error && /address already in use/i.test(err.message);
      if (!inUse || attempt >= 3) throw err;
    }
  }
}

async function startOnce(binary: string, options: StartEtcdOptions): Promise<EtcdServer> {
  const { signal } = options;
  if (signal?.aborted) throw new TwillError("Aborted", "etcd start was aborted");
  const [clientPort, peerPort] = await freePorts(2);
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const dataDir = mkdtempSync(join(tmpdir(), "twill-etcd-"));
  const args = [
    "--name=twill",
    `--data-dir=${dataDir}`,
    // etcd names a unix listener's socket after its URL's host, in its
    // working directory (the data dir, below).
    `--listen-client-urls=${endpoint},unix://localhost:${clientPort}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=twill=${peer}`,
    "--initial-cluster-state=new",
    // One member has no one to wait for: short timers make it leader in ~50 ms.
    "--heartbeat-interval=10",
    "--election-timeout=100",
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=error",
  ];
  let child: ChildProcess;
  try {
    child = spawn("/bin/sh", ["-c", WATCHDOG, "twill-etcd-watchdog", dataDir, binary, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      cwd: dataDir,
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      resolve();
    });
    child.once("error", () => {
      exited = true;
      resolve();
    });
  });
  let stopping: Promise<void> | undefined;
  let pid = 0;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      signal?.removeEventListener("abort", onAbort);
      // Hold the process open until etcd is gone (the handles may be unref'd).
      child.ref();
      child.stdin?.destroy();
      if (!(await within(exit, 5000))) {
        if (pid > 0) tryKill(pid, "SIGKILL");
        tryKill(child.pid, "SIGKILL");
        await within(exit, 2000);
      }
      rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const onAbort = (): void => void stop();
  signal?.addEventListener("abort", onAbort, { once: true });

  try {
    pid = await readPid(child, exit);
    await waitHealthy(endpoint, options.startTimeoutMs ?? 10_000, () => exited, signal);
  } catch (err) {
    await stop();
    const reason = err instanceof Error ? err.message : String(err);
    const tail = stderr.trim().split("\n").slice(-5).join("\n");
    if (err instanceof TwillError && err.code === "Aborted") throw err;
    throw new TwillError(
      "Unavailable",
      `etcd at ${endpoint} did not start: ${reason}${tail ? `\n${tail}` : ""}`,
      { cause: err },
    );
  }
  // From here on a forgotten stop() must not keep the process alive; its
  // exit closes the pipe and the watchdog cleans up.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
  const socketEndpoint = `unix://${join(dataDir, `localhost:${clientPort}`)}`;
  return { endpoint, socketEndpoint, dataDir, pid, stop };
}

function readPid(child: ChildProcess, exit: Promise<void>): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line !== undefined) {
        child.stdout?.off("data", onData);
        const pid = Number(line.trim());
        if (Number.isSafeInteger(pid) && pid > 0) resolve(pid);
        else reject(new Error(`the watchdog printed "${line}" instead of a pid`));
      }
    };
    child.stdout?.on("data", onData);
    void exit.then(() => reject(new Error("the etcd watchdog exited at once")));
  });
}

async function waitHealthy(
  endpoint: string,
  timeoutMs: number,
  exited: () => boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  for (;;) {
    if (signal?.aborted) throw new TwillError("Aborted", "etcd start was aborted");
    if (exited()) throw new Error("etcd exited during start-up");
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: unknown };
      if (body.health === "true") return;
      last = `health is ${JSON.stringify(body.health)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`not healthy after ${timeoutMs} ms (${last})`);
    await delay(20);
  }
}

/** Ask the kernel for `count` distinct free loopback ports. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("no port assigned");
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function tryKill(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True when `promise` settles within `ms`; the timer never outlives the wait. */
async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
