// Runs and supervises one BIRD 2 per node, in the network namespace the
// agent runs in, with every file in one per-node directory (BirdPaths):
//
//   <dir>/bird.conf   the rendered configuration (written atomically)
//   <dir>/bird.ctl    the control socket (-s)
//   <dir>/bird.pid    the pid file (-P)
//   <dir>/bird.log    what BIRD writes on stdout/stderr (the previous run's in bird.log.1)
//
// Life cycle:
//
//   start() ──pid file + socket alive?──► yes: ADOPT (a BIRD an earlier agent started)
//      │                                   no:  remove a stale socket/pid file
//      ▼
//   setConfig(text) ── same text as on disk? ──► nothing (no reload)
//      │ differs: `bird -p` checks it, temp file + rename, then
//      ├─ running ──► `configure` through the control socket
//      └─ not running ──► spawn `bird -f -c … -s … -P …` (detached)
//   BIRD dies ──► log, restart after a backoff (200 ms doubling to 30 s;
//                 reset once a run lasted a minute), with -R
//   stop({ stopBird: false }) ──► BIRD keeps running (the default)
//   stop({ stopBird: true })  ──► `down`, then wait for it to exit
//
// Why BIRD outlives the agent: an agent restart must withdraw nothing.
// BIRD runs detached (its own session, output to a file, not a pipe), so
// the agent's exit or a Ctrl-C to its process group leaves it running, and
// the next agent adopts it by its pid file and socket instead of starting a
// second one. An adopted BIRD is not our child: it is watched by polling
// its pid (/proc/<pid>/stat: a zombie counts as dead).
//
// Graceful restart: a BIRD restarted after it died, or started where a
// dead one left its pid file, runs with -R ("graceful restart recovery"):
// with `graceful restart` in its kernel and BGP protocols, it keeps the
// kernel routes the dead one installed and tells peers (restart bit) to
// keep the routes it announced until it has converged again. A first start
// on a clean directory does not use -R, so it never waits for peers that
// may be down.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, open, readFile, readlink, rename, stat, unlink } from "node:fs/promises";
import { TwillError } from "../util/errors.js";
import { BirdControl } from "./bird-control.js";
import type { BirdPaths } from "./bgp-inputs.js";

export { DEFAULT_BIRD_ROOT, defaultBirdDir } from "./bird-dir.js";

/** Pino-shaped: fields first, then the message. */
export interface BirdLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export type BirdState =
  /** Not started yet (no configuration given), or stopped. */
  | "stopped"
  /** Spawned, waiting for its control socket. */
  | "starting"
  | "running"
  /** Died; waiting to start again. */
  | "backoff";

export interface BirdSupervisorOptions {
  /** The BIRD executable (default "bird", found on PATH). */
  binary?: string;
  logger?: BirdLogger;
  /** Control socket timeout per command (default 5000 ms). */
  commandTimeoutMs?: number;
  /** How long a started BIRD may take to open its socket (default 10 000 ms). */
  startTimeoutMs?: number;
  backoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number };
  /** How often an adopted BIRD's pid is checked (default 1000 ms). */
  pollIntervalMs?: number;
  /** Use -R when restarting after BIRD died (default true). */
  gracefulRestart?: boolean;
  /** Called after every state change. */
  onStateChange?(state: BirdState): void;
  /**
   * Refuse to adopt a BIRD in another network namespace (default true).
   * Tests that run BIRD in a namespace through a wrapper turn it off.
   */
  checkNetns?: boolean;
}

export type ConfigOutcome =
  /** The text equals what BIRD has: nothing written, nothing reloaded. */
  | "unchanged"
  /** Written and reloaded through the control socket. */
  | "reloaded"
  /** Written (or already there) and BIRD started. */
  | "started"
  /** Written; BIRD is starting or waiting to restart and will read it then. */
  | "written";

export interface BirdSupervisorStats {
  state: BirdState;
  up: boolean;
  pid: number | undefined;
  /** Restarts after BIRD died (not the first start). */
  restarts: number;
  reloads: number;
  /** The running BIRD was found running (started by an earlier agent). */
  adopted: boolean;
}

/** sun_path holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH = 107;

const silent: BirdLogger = { debug() {}, info() {}, warn() {}, error() {} };

export class BirdSupervisor {
  readonly paths: BirdPaths;
  readonly #binary: string;
  readonly #log: BirdLogger;
  readonly #timeoutMs: number;
  readonly #startTimeoutMs: number;
  readonly #backoff: { initialMs: number; maxMs: number; resetAfterMs: number };
  readonly #pollMs: number;
  readonly #gracefulRestart: boolean;
  readonly #onStateChange: ((s: BirdState) => void) | undefined;
  readonly #checkNetns: boolean;

  #state: BirdState = "stopped";
  #pid: number | undefined;
  #child: ChildProcess | undefined;
  #adopted = false;
  /** What bird.conf holds (undefined: no file). */
  #written: string | undefined;
  /** A dead BIRD's routes may still be in the kernel: start with -R. */
  #recovery = false;
  #restarts = 0;
  #reloads = 0;
  #failuresInRow = 0;
  #startedAt = 0;
  #stopping = false;
  #ops: Promise<unknown> = Promise.resolve();
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #started = false;

  constructor(paths: BirdPaths, options: BirdSupervisorOptions = {}) {
    this.paths = paths;
    this.#binary = options.binary ?? "bird";
    this.#log = options.logger ?? silent;
    this.#timeoutMs = options.commandTimeoutMs ?? 5_000;
    this.#startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.#backoff = {
      initialMs: options.backoff?.initialMs ?? 200,
      maxMs: options.backoff?.maxMs ?? 30_000,
      resetAfterMs: options.backoff?.resetAfterMs ?? 60_000,
    };
    this.#pollMs = options.pollIntervalMs ?? 1_000;
    this.#gracefulRestart = options.gracefulRestart ?? true;
    this.#onStateChange = options.onStateChange;
    this.#checkNetns = options.checkNetns ?? true;
  }

  get state(): BirdState {
    return this.#state;
  }

  stats(): BirdSupervisorStats {
    return {
      state: this.#state,
      up: this.#state === "running",
      pid: this.#pid,
      restarts: this.#restarts,
      reloads: this.#reloads,
      adopted: this.#adopted,
    };
  }

  /**
   * Create the directory; adopt a BIRD already running there, or clean up
   * what a dead one left. Starts nothing: BIRD starts with the first
   * configuration. TwillError "Conflict" when a live BIRD using this
   * directory runs in another network namespace (two nodes share a directory).
   */
  async start(): Promise<"adopted" | "clean" | "stale"> {
    if (this.#started) throw new TwillError("Internal", "BirdSupervisor.start() called twice");
    this.#started = true;
    if (Buffer.byteLength(this.paths.socket) > MAX_SOCKET_PATH) {
      throw new TwillError(
        "Invalid",
        `BIRD's control socket path "${this.paths.socket}" is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter --bird-dir`,
      );
    }
    await mkdir(this.paths.dir, { recursive: true, mode: 0o755 });
    this.#written = await readFile(this.paths.config, "utf8").catch(() => undefined);
    const found = await this.#inspect();
    if (found.kind === "running") {
      this.#adopted = true;
      this.#pid = found.pid;
      this.#startedAt = Date.now();
      this.#setState("running");
      this.#log.info(
        { pid: found.pid, dir: this.paths.dir, version: found.version },
        "BIRD already running; adopted",
      );
      this.#watchAdopted();
      return "adopted";
    }
    if (found.kind === "stale") {
      if (found.pid !== undefined && (await isBird(found.pid))) {
        // Its pid file names it, yet its socket does not answer (removed, or
        // BIRD is wedged): it cannot be supervised, and a second BIRD beside it
        // would fight over the kernel table. Ours to replace.
        this.#log.warn(
          { pid: found.pid, dir: this.paths.dir },
          "BIRD runs but its control socket does not answer; stopping it",
        );
        tryKill(found.pid, "SIGTERM");
        if (!(await waitGone(found.pid, undefined, 3_000))) {
          tryKill(found.pid, "SIGKILL");
          await waitGone(found.pid, undefined, 2_000);
        }
      }
      this.#log.info(
        { dir: this.paths.dir, pid: found.pid },
        "a BIRD that ran here is gone; removed its socket and pid file",
      );
      await this.#removeLeftovers();
      // Its routes may still be in the kernel.
      this.#recovery = true;
      return "stale";
    }
    return "clean";
  }

  /**
   * Hand BIRD a configuration. Written and reloaded only when the text
   * differs from what BIRD has. TwillError "Invalid" (with BIRD's message)
   * when `bird -p` rejects it: the file on disk and the running BIRD keep the
   * previous configuration.
   */
  setConfig(text: string): Promise<ConfigOutcome> {
    const run = () => this.#setConfig(text);
    const p = this.#ops.then(run, run);
    this.#ops = p.catch(() => undefined);
    return p;
  }

  async #setConfig(text: string): Promise<ConfigOutcome> {
    if (!this.#started) throw new TwillError("Internal", "BirdSupervisor not started");
    if (this.#stopping) throw new TwillError("Aborted", "BIRD supervisor is stopping");
    const changed = text !== this.#written;
    if (changed) await this.#write(text);
    switch (this.#state) {
      case "running": {
        if (!changed) return "unchanged";
        const reply = await this.query((c) => c.configure());
        // BIRD 2.0.12 may take a filter whose prefix set gained an adjacent
        // prefix for unchanged on `configure` (a new block next to one held),
        // and then never exports the new block: re-run the filters.
        await this.query((c) => c.reloadAll());
        this.#reloads++;
        this.#log.info({ reply, bytes: text.length }, "BIRD configuration reloaded");
        return "reloaded";
      }
      case "stopped":
        await this.#spawn();
        return "started";
      case "starting":
      case "backoff":
        return changed ? "written" : "unchanged";
    }
  }

  /** Connect to BIRD's control socket for `fn` (a fresh connection, closed after). */
  async query<T>(fn: (c: BirdControl) => Promise<T>): Promise<T> {
    const c = await BirdControl.connect(this.paths.socket, { timeoutMs: this.#timeoutMs });
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  }

  /**
   * Stop supervising. By default BIRD keeps running (an agent restart must
   * withdraw nothing); with stopBird it is shut down (`down`) and waited for.
   */
  async stop(options: { stopBird?: boolean } = {}): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    await this.#ops.catch(() => undefined);
    clearTimeout(this.#restartTimer);
    clearInterval(this.#poll);
    const child = this.#child;
    if (options.stopBird && this.#state !== "stopped") {
      const pid = this.#pid;
      try {
        await this.query((c) => c.down());
      } catch (err) {
        this.#log.warn({ error: (err as Error).message }, "BIRD did not take `down`; killing it");
        if (pid !== undefined) tryKill(pid, "SIGTERM");
      }
      if (pid !== undefined && !(await waitGone(pid, child, 5_000))) {
        tryKill(pid, "SIGKILL");
        await waitGone(pid, child, 2_000);
      }
      this.#log.info({ pid }, "BIRD stopped");
      this.#setState("stopped");
    } else if (this.#state !== "stopped") {
      this.#log.info({ pid: this.#pid }, "leaving BIRD running");
    }
    if (child) {
      child.removeAllListeners("exit");
      child.unref();
    }
    this.#child = undefined;
  }

  // ---------------------------------------------------------------------------

  #setState(s: BirdState): void {
    if (s === this.#state) return;
    this.#state = s;
    this.#onStateChange?.(s);
  }

  async #write(text: string): Promise<void> {
    const tmp = `${this.paths.config}.tmp`;
    const fh = await open(tmp, "w", 0o644);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const check = await run(this.#binary, ["-p", "-c", tmp], 10_000);
    if (check.code !== 0) {
      await unlink(tmp).catch(() => undefined);
      const why = (check.stderr || check.stdout).trim().split("\n").slice(-3).join(" / ");
      throw new TwillError(
        "Invalid",
        `BIRD rejects the rendered configuration; keeping the previous one: ${why}`,
      );
    }
    await rename(tmp, this.paths.config);
    this.#written = text;
  }

  /** What the directory holds: a live BIRD, traces of a dead one, or nothing. */
  async #inspect(): Promise<
    | { kind: "running"; pid: number | undefined; version: string }
    | { kind: "stale"; pid: number | undefined }
    | { kind: "none" }
  > {
    const pidText = await readFile(this.paths.pidFile, "utf8").catch(() => undefined);
    const pid = pidText === undefined ? undefined : Number(pidText.trim());
    const validPid = pid !== undefined && Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
    const socketThere = await stat(this.paths.socket).then(
      () => true,
      () => false,
    );
    if (validPid !== undefined && (await isBird(validPid))) {
      if (this.#checkNetns && !(await sameNetns(validPid))) {
        throw new TwillError(
          "Conflict",
          `BIRD (pid ${validPid}) using ${this.paths.dir} runs in another network namespace: give each node its own --bird-dir`,
        );
      }
    }
    if (socketThere) {
      try {
        const c = await BirdControl.connect(this.paths.socket, { timeoutMs: this.#timeoutMs });
        c.close();
        const alive = validPid !== undefined && (await isBird(validPid)) ? validPid : undefined;
        return { kind: "running", pid: alive, version: c.version };
      } catch (err) {
        if (err instanceof TwillError && err.code === "Timeout") {
          // Something holds the socket and is too busy to greet: not ours to replace.
          return { kind: "running", pid: validPid, version: "unknown" };
        }
        if (!(err instanceof TwillError && err.code === "Unavailable")) throw err;
      }
    }
    if (pidText !== undefined || socketThere) return { kind: "stale", pid: validPid };
    return { kind: "none" };
  }

  async #removeLeftovers(): Promise<void> {
    for (const f of [this.paths.socket, this.paths.pidFile]) {
      await unlink(f).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
    }
  }

  async #spawn(): Promise<void> {
    const args = ["-f", "-c", this.paths.config, "-s", this.paths.socket, "-P", this.paths.pidFile];
    const recovery = this.#recovery && this.#gracefulRestart;
    if (recovery) args.push("-R");
    await this.#removeLeftovers();
    const logPath = `${this.paths.dir}/bird.log`;
    await rename(logPath, `${logPath}.1`).catch(() => undefined);
    const fd = openSync(logPath, "a", 0o644);
    let child: ChildProcess;
    try {
      // Detached: its own session, so the agent's exit (or a signal to the
      // agent's process group) does not take BIRD with it.
      child = spawn(this.#binary, args, { detached: true, stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.#child = child;
    this.#adopted = false;
    this.#pid = child.pid;
    this.#startedAt = Date.now();
    this.#setState("starting");
    this.#log.info({ pid: child.pid, recovery, dir: this.paths.dir }, "BIRD starting");
    let exited = false;
    const exit = new Promise<void>((resolve) => {
      child.once("error", (err) => {
        exited = true;
        this.#log.error({ error: err.message, binary: this.#binary }, "cannot run BIRD");
        this.#onDeath(undefined, undefined);
        resolve();
      });
      child.once("exit", (code, signal) => {
        exited = true;
        if (this.#child === child) this.#onDeath(code, signal);
        resolve();
      });
    });
    // Wait for the control socket (BIRD opens it once the config is read).
    const deadline = Date.now() + this.#startTimeoutMs;
    while (!exited && !this.#stopping) {
      try {
        const c = await BirdControl.connect(this.paths.socket, { timeoutMs: 1_000 });
        c.close();
        break;
      } catch {
        if (Date.now() > deadline) {
          this.#log.error({ pid: child.pid }, "BIRD did not open its control socket; killing it");
          child.kill("SIGKILL");
          await exit;
          return;
        }
        await Promise.race([exit, sleep(25)]);
      }
    }
    if (exited || this.#stopping) return;
    // Clean up after this run from now on, and recover gracefully when it dies.
    this.#recovery = true;
    this.#setState("running");
    this.#log.info({ pid: child.pid, recovery }, "BIRD running");
  }

  #onDeath(code: number | null | undefined, signal: NodeJS.Signals | null | undefined): void {
    if (this.#stopping) {
      this.#setState("stopped");
      return;
    }
    this.#child = undefined;
    const ranMs = Date.now() - this.#startedAt;
    this.#failuresInRow = ranMs >= this.#backoff.resetAfterMs ? 1 : this.#failuresInRow + 1;
    const delay = Math.min(
      this.#backoff.initialMs * 2 ** (this.#failuresInRow - 1),
      this.#backoff.maxMs,
    );
    this.#setState("backoff");
    void this.#logTail().then((tail) =>
      this.#log.warn(
        { pid: this.#pid, code, signal, ranMs, restartInMs: delay, ...(tail ? { tail } : {}) },
        "BIRD exited; restarting it",
      ),
    );
    this.#pid = undefined;
    this.#recovery = true;
    this.#restartTimer = setTimeout(() => {
      const run = async () => {
        if (this.#stopping || this.#state !== "backoff") return;
        this.#restarts++;
        await this.#spawn();
      };
      const p = this.#ops.then(run, run);
      this.#ops = p.catch((err: unknown) => {
        this.#log.error({ error: (err as Error).message }, "restarting BIRD failed");
        this.#onDeath(undefined, undefined);
      });
    }, delay);
  }

  #watchAdopted(): void {
    const pid = this.#pid;
    let checking = false;
    this.#poll = setInterval(() => {
      if (checking || this.#stopping || !this.#adopted) return;
      checking = true;
      const alive =
        pid !== undefined
          ? isBird(pid)
          : BirdControl.connect(this.paths.socket, { timeoutMs: 2_000 }).then(
              (c) => (c.close(), true),
              () => false,
            );
      void alive
        .then(async (ok) => {
          if (ok || this.#stopping || !this.#adopted) return;
          clearInterval(this.#poll);
          this.#adopted = false;
          this.#onDeath(undefined, undefined);
        })
        .finally(() => {
          checking = false;
        });
    }, this.#pollMs);
    this.#poll.unref();
  }

  async #logTail(): Promise<string> {
    const text = await readFile(`${this.paths.dir}/bird.log`, "utf8").catch(() => "");
    return text.trim().split("\n").slice(-5).join("\n");
  }
}

// ---------------------------------------------------------------------------

/** True when `pid` is a live (not zombie) BIRD process. */
async function isBird(pid: number): Promise<boolean> {
  const statText = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (statText === undefined) return false;
  // "pid (comm) S ...": the state follows the last ")".
  const close = statText.lastIndexOf(")");
  const comm = statText.slice(statText.indexOf("(") + 1, close);
  const state = statText.slice(close + 2, close + 3);
  return comm.startsWith("bird") && state !== "Z" && state !== "X";
}

async function sameNetns(pid: number): Promise<boolean> {
  try {
    const [theirs, ours] = await Promise.all([
      readlink(`/proc/${pid}/ns/net`),
      readlink("/proc/self/ns/net"),
    ]);
    return theirs === ours;
  } catch {
    // Not allowed to look (not root): assume the same, as BIRD's socket answered.
    return true;
  }
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

async function waitGone(
  pid: number,
  child: ChildProcess | undefined,
  ms: number,
): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) return true;
    if (!child && !(await isBird(pid))) return true;
    await sleep(20);
  }
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function run(
  file: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, [...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof (err as { code?: unknown }).code === "number"
            ? (err.code as number)
            : 1;
      resolve({
        code,
        stdout: String(stdout),
        stderr: err && code === 1 && !stderr ? err.message : String(stderr),
      });
    });
  });
}
