// The near end of a probe, run inside the namespace to probe from: every
// target at once, in this one process. TCP: a connection (and the
// responder's greeting, which says which source address it saw); UDP: a
// datagram on a connected socket and the responder's answer; ICMP: one
// `ping -c 1` child per target (`ping -6` for IPv6), since Node has no raw
// sockets. Each probe ends within timeoutMs; none throws: a failure is an
// outcome with ok=false and a detail that says why.
//
// probe-main.ts runs this as a process inside a namespace.
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { connect, isIPv6 } from "node:net";
import type { ProbeOutcome, ProbeTarget } from "./matrix.js";
import { targetProblem } from "./matrix.js";

export interface ProbeOptions {
  /** How long one probe may take (default 1000 ms). */
  timeoutMs?: number;
  /** The ping binary (default "ping", from PATH). */
  ping?: string;
}

export const DEFAULT_PROBE_TIMEOUT_MS = 1000;

interface Greeting {
  from?: unknown;
  nonce?: unknown;
}

function parseGreeting(text: string): Greeting | undefined {
  try {
    const g = JSON.parse(text.split("\n")[0] ?? "") as unknown;
    return typeof g === "object" && g !== null ? (g as Greeting) : undefined;
  } catch {
    return undefined;
  }
}

function errorText(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e.code === "ECONNREFUSED") return "refused";
  if (e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH") return `unreachable (${e.code})`;
  if (e.code === "EADDRNOTAVAIL") return "source address not available here (EADDRNOTAVAIL)";
  if (e.code === "EPERM") return "refused by the local firewall (EPERM)";
  return e.code ?? e.message ?? String(err);
}

function probeTcp(t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let done = false;
    let connected = false;
    let data = "";
    const s = connect({
      host: t.addr,
      port: t.port ?? 0,
      ...(t.source !== undefined ? { localAddress: t.source } : {}),
    });
    const finish = (ok: boolean, detail: string, seenAs?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ target: t, ok, detail, ...(seenAs !== undefined ? { seenAs } : {}) });
    };
    const greeted = () => {
      const from = parseGreeting(data)?.from;
      if (typeof from === "string") finish(true, `connected, seen as ${from}`, from);
      else finish(true, "connected (no greeting)");
    };
    const timer = setTimeout(() => {
      if (connected) greeted();
      else finish(false, `no connection within ${timeoutMs} ms`);
    }, timeoutMs);
    s.on("connect", () => (connected = true));
    s.on("data", (d: Buffer) => {
      data += d.toString("utf8");
      if (data.includes("\n")) greeted();
    });
    s.on("end", () => (connected ? greeted() : undefined));
    s.on("error", (err) => {
      if (connected) greeted();
      else finish(false, errorText(err));
    });
  });
}

function probeUdp(t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const v6 = isIPv6(t.addr);
    const sock = createSocket(v6 ? "udp6" : "udp4");
    const nonce = randomBytes(8).toString("hex");
    let done = false;
    const finish = (ok: boolean, detail: string, seenAs?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {
        // already closed
      }
      resolve({ target: t, ok, detail, ...(seenAs !== undefined ? { seenAs } : {}) });
    };
    const timer = setTimeout(() => finish(false, `no reply within ${timeoutMs} ms`), timeoutMs);
    sock.on("error", (err) => finish(false, errorText(err)));
    sock.on("message", (msg) => {
      const g = parseGreeting(msg.toString("utf8"));
      if (g?.nonce !== undefined && g.nonce !== nonce) return; // a late answer to someone else
      const from = g?.from;
      if (typeof from === "string") finish(true, `answered, seen as ${from}`, from);
      else finish(true, "answered (not a responder's reply)");
    });
    sock.bind({ port: 0, ...(t.source !== undefined ? { address: t.source } : {}) }, () => {
      sock.connect(t.port ?? 0, t.addr, (err?: Error) => {
        if (err) finish(false, errorText(err));
        else sock.send(nonce, (e) => (e ? finish(false, errorText(e)) : undefined));
      });
    });
  });
}

function probeIcmp(t: ProbeTarget, timeoutMs: number, ping: string): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const seconds = Math.max(timeoutMs / 1000, 0.1);
    const args = [
      ...(isIPv6(t.addr) ? ["-6"] : ["-4"]),
      "-n",
      "-c",
      "1",
      "-W",
      String(seconds),
      ...(t.source !== undefined ? ["-I", t.source] : []),
      t.addr,
    ];
    let out = "";
    let settled = false;
    const finish = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ target: t, ok, detail });
    };
    const child = spawn(ping, args, { stdio: ["ignore", "pipe", "pipe"] });
    // ping keeps its own deadline; this one only guards against a hung child.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish(false, `ping gave no answer within ${timeoutMs + 2000} ms`);
    }, timeoutMs + 2000);
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.on("error", (err) => {
      const missing = (err as { code?: string }).code === "ENOENT";
      finish(false, missing ? `cannot run ${ping}: install iputils-ping` : errorText(err));
    });
    child.on("close", (code) => {
      if (code === 0) {
        const time = /time=([0-9.]+ ms)/.exec(out)?.[1];
        finish(true, time ? `echo reply in ${time}` : "echo reply");
      } else if (code === 1) {
        const icmpError = /From \S+ .*(Unreachable|Prohibited|exceeded)[^\n]*/i.exec(out)?.[0];
        finish(false, icmpError ?? `no echo reply within ${timeoutMs} ms`);
      } else {
        finish(false, `ping failed (exit ${code}): ${out.trim().split("\n").pop() ?? ""}`);
      }
    });
  });
}

/** Probes every target at once; outcomes in the targets' order. */
export async function runProbes(
  targets: readonly ProbeTarget[],
  options: ProbeOptions = {},
): Promise<ProbeOutcome[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  return Promise.all(
    targets.map(async (t): Promise<ProbeOutcome> => {
      const problem = targetProblem(t);
      if (problem !== undefined) return { target: t, ok: false, detail: `invalid: ${problem}` };
      if (t.proto === "tcp") return probeTcp(t, timeoutMs);
      if (t.proto === "udp") return probeUdp(t, timeoutMs);
      return probeIcmp(t, timeoutMs, options.ping ?? "ping");
    }),
  );
}
