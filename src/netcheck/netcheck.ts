// Connectivity checks between network namespaces: a responder in each
// namespace to be reached, one prober process per namespace probed from, and
// a matrix of expected allowed/denied pairs checked with retries. Used by
// the end-to-end tests (src/e2e) and `twill lab check`.
//
//   test / lab ── probeFrom(ns A, targets) ──► ip netns exec A node probe-main.js
//                                                 │ tcp, udp (in process), ping (children)
//                                                 ▼
//                                  namespace B: node responder-main.js (startResponder)
//                                  answers with the source address it saw
//
// A namespace is named as `ip netns` names it ("twt-ab12-wa"), or given as a
// path ("/var/run/netns/x", "/proc/123/ns/net"), entered with nsenter.
// Policy takes a moment to reach the kernel after a change: checkMatrix
// re-probes only the cases that do not match yet, a bounded number of times.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TwillError } from "../util/errors.js";
import { resultOf } from "./matrix.js";
import type { MatrixCase, MatrixResult, ProbeOutcome, ProbeTarget } from "./matrix.js";
import { DEFAULT_PROBE_TIMEOUT_MS } from "./prober.js";

export { formatMatrix, targetText } from "./matrix.js";
export type {
  FormatOptions,
  MatrixCase,
  MatrixResult,
  ProbeOutcome,
  ProbeTarget,
} from "./matrix.js";

const RESPONDER_MAIN = fileURLToPath(new URL("./responder-main.js", import.meta.url));
const PROBE_MAIN = fileURLToPath(new URL("./probe-main.js", import.meta.url));

/** The command line that runs `args` inside namespace `netns`. */
export function inNamespace(netns: string, args: readonly string[]): [string, string[]] {
  return netns.startsWith("/")
    ? ["nsenter", [`--net=${netns}`, ...args]]
    : ["ip", ["netns", "exec", netns, ...args]];
}

export interface ResponderHandle {
  /** Stops the responder (closing its standard input, then SIGTERM); safe to call twice. */
  stop(): Promise<void>;
}

export interface StartResponderOptions {
  tcpPorts: readonly number[];
  udpPorts: readonly number[];
  /** TCP: echo after the greeting instead of closing (default false), for long flows. */
  echo?: boolean;
  /** How long to wait for it to listen (default 10000 ms). */
  startTimeoutMs?: number;
}

/**
 * Starts a responder inside `netns`: TCP and UDP on every address, IPv4 and
 * IPv6, answering with one JSON line that names the source address it saw
 * (see responder.ts). Resolves once it listens.
 * The process ends when stop() is called or when this process exits.
 */
export function startResponder(
  netns: string,
  opts: StartResponderOptions,
): Promise<ResponderHandle> {
  const [file, args] = inNamespace(netns, [
    process.execPath,
    RESPONDER_MAIN,
    "--tcp",
    opts.tcpPorts.join(","),
    "--udp",
    opts.udpPorts.join(","),
    ...(opts.echo ? ["--echo"] : []),
  ]);
  const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin?.end();
      const t = setTimeout(() => child.kill("SIGTERM"), 1000);
      const k = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
      clearTimeout(k);
    }
  };
  // Neither the child nor its pipes keep this process alive if stop() is forgotten.
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) {
    (s as { unref?: () => void } | null)?.unref?.();
  }
  return new Promise((resolve, reject) => {
    let out = "";
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop().then(() =>
        reject(new TwillError("Unavailable", `responder in ${netns}: ${why}`)),
      );
    };
    const timeoutMs = opts.startTimeoutMs ?? 10_000;
    const timer = setTimeout(() => fail(`not listening after ${timeoutMs} ms`), timeoutMs);
    child.on("error", (err) => fail(`cannot start: ${err.message}`));
    child.once("close", (code) => fail(`exited (${code}): ${stderr.trim()}`));
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      if (!settled && out.includes("ready\n")) {
        settled = true;
        clearTimeout(timer);
        resolve({ stop });
      }
    });
  });
}

export interface ProbeFromOptions {
  /** How long one probe may take (default 1000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Probes every target from inside `netns`, all at once, in one process
 * (ICMP by `ping` children of it). Outcomes are in the targets' order.
 * Throws TwillError "Unavailable" when the prober cannot run at all.
 */
export function probeFrom(
  netns: string,
  targets: readonly ProbeTarget[],
  opts: ProbeFromOptions = {},
): Promise<ProbeOutcome[]> {
  if (targets.length === 0) return Promise.resolve([]);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const [file, args] = inNamespace(netns, [process.execPath, PROBE_MAIN, String(timeoutMs)]);
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new TwillError("Aborted", `probe from ${netns}: aborted`));
      return;
    }
    const child: ChildProcess = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let failure: TwillError | undefined;
    const kill = (why: TwillError) => {
      failure ??= why;
      child.kill("SIGKILL");
    };
    const guardMs = timeoutMs + 10_000;
    const timer = setTimeout(
      () => kill(new TwillError("Timeout", `probe from ${netns}: no answer after ${guardMs} ms`)),
      guardMs,
    );
    const onAbort = () => kill(new TwillError("Aborted", `probe from ${netns}: aborted`));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr?.on("data", (d: Buffer) => (err += d.toString("utf8")));
    child.on("error", (e) => {
      failure ??= new TwillError("Unavailable", `probe from ${netns}: ${e.message}`, { cause: e });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (failure) return reject(failure);
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        const outcomes = JSON.parse(out) as ProbeOutcome[];
        if (!Array.isArray(outcomes) || outcomes.length !== targets.length) {
          throw new Error("wrong number of outcomes");
        }
        resolve(outcomes);
      } catch (e) {
        reject(
          new TwillError(
            "Unavailable",
            `probe from ${netns} failed (${(e as Error).message}): ${err.trim() || out.trim()}`,
          ),
        );
      }
    });
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(JSON.stringify(targets));
  });
}

/** Probes targets from one namespace (probeFrom, or a fake in tests). */
export type ProbeFn = (
  netns: string,
  targets: readonly ProbeTarget[],
  opts: ProbeFromOptions,
) => Promise<ProbeOutcome[]>;

export interface CheckMatrixOptions {
  /** How many times a case is probed at most (default 5). */
  attempts?: number;
  /** Pause before re-probing the cases that do not match yet (default 300 ms). */
  retryDelayMs?: number;
  /** How long one probe may take (default 1000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Default: probeFrom. */
  probe?: ProbeFn;
}

export interface MatrixReport {
  /** One per case, in the cases' order: the last outcome and whether it matched. */
  results: MatrixResult[];
  /** The results that still do not match. */
  mismatches: MatrixResult[];
}

/**
 * Probes every case (every source namespace at once), then re-probes only
 * the cases whose outcome differs from `allowed`, after retryDelayMs, until
 * all match or a case has been probed `attempts` times.
 */
export async function checkMatrix(
  cases: readonly MatrixCase[],
  opts: CheckMatrixOptions = {},
): Promise<MatrixReport> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const probe = opts.probe ?? probeFrom;
  const probeOpts: ProbeFromOptions = {
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  const results: (MatrixResult | undefined)[] = cases.map(() => undefined);
  let pending = cases.map((_, i) => i);
  for (let attempt = 1; attempt <= attempts && pending.length > 0; attempt++) {
    if (attempt > 1) {
      await new Promise((r) => setTimeout(r, opts.retryDelayMs ?? 300));
      if (opts.signal?.aborted) throw new TwillError("Aborted", "connectivity check aborted");
    }
    const bySource = new Map<string, number[]>();
    for (const i of pending) {
      const from = cases[i]!.from;
      const list = bySource.get(from) ?? [];
      list.push(i);
      bySource.set(from, list);
    }
    await Promise.all(
      [...bySource].map(async ([from, indexes]) => {
        const outcomes = await probe(
          from,
          indexes.map((i) => cases[i]!.target),
          probeOpts,
        );
        indexes.forEach((i, k) => {
          results[i] = resultOf(cases[i]!, outcomes[k]!, attempt);
        });
      }),
    );
    pending = pending.filter((i) => !results[i]!.matched);
  }
  const done = results as MatrixResult[];
  return { results: done, mismatches: done.filter((r) => !r.matched) };
}
