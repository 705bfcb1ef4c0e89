// Watches network interfaces appear, change and disappear, so a workload
// veth that shows up after its endpoint message still gets its sysctls and
// routes, and routes of a vanished one are forgotten.
//
//   ip -o monitor link (child process, one line per event) ──┐
//   ip -j link show (after the monitor started; every       ├──► links: name → {index, up}
//     interfaceRefreshInterval; after a restart of the      │        │ differences
//     monitor)                                              ─┘        ▼
//                                                               onChange(name, link | undefined)
//
// No polling loop: the list is the starting point and a backstop (the
// monitor cannot say when it has subscribed, so a change in the first
// instant is caught by the list taken just after, or by the next one). A
// monitor that dies is restarted after a bounded backoff, followed by a
// fresh list. onChange is called only for real differences.
import { spawn } from "node:child_process";
import { TwillError } from "../util/errors.js";
import type { RunCommand } from "./run-command.js";
import { stderrSummary } from "./run-command.js";

export interface Link {
  name: string;
  index: number;
  /** Administratively up (IFF_UP): routes can point at it. */
  up: boolean;
}

export interface LinkEvent {
  link: Link;
  deleted: boolean;
}

/** The OS facility: list links, and stream their changes. */
export interface LinkSource {
  list(signal?: AbortSignal): Promise<Link[]>;
  /**
   * Stream changes to `onEvent` until the signal aborts (then resolves) or
   * the stream breaks (then rejects). `onStarted` runs once it is running.
   */
  watch(
    onEvent: (e: LinkEvent) => void,
    options: { signal: AbortSignal; onStarted: () => void },
  ): Promise<void>;
}

export interface LinkMonitorOptions {
  /** A difference: the link as it is now, or undefined when it is gone. */
  onChange(name: string, link: Link | undefined): void;
  /** Problems (the monitor broke, a list failed). */
  onError?(err: unknown): void;
  /** Relist this often besides watching; 0 = only at start and after a monitor restart. */
  refreshIntervalMs: number;
  /** Wait `ms` or until the signal aborts (default: a timer). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Delay before restarting a broken monitor (doubles, up to 30 s); default 200 ms. */
  restartDelayMs?: number;
}

/** How long after the monitor process started the list is taken (it subscribes at once). */
const SUBSCRIBE_GRACE_MS = 20;

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

export class LinkMonitor {
  readonly #source: LinkSource;
  readonly #options: LinkMonitorOptions;
  readonly #links = new Map<string, Link>();
  #started = false;

  constructor(source: LinkSource, options: LinkMonitorOptions) {
    this.#source = source;
    this.#options = options;
  }

  isUp(name: string): boolean {
    return this.#links.get(name)?.up ?? false;
  }

  get(name: string): Link | undefined {
    return this.#links.get(name);
  }

  names(): string[] {
    return [...this.#links.keys()].sort();
  }

  /**
   * Start watching. Resolves with `done` (which settles when the signal
   * aborts) once the first list is in, so the caller knows every link.
   */
  async start(signal: AbortSignal): Promise<{ done: Promise<void> }> {
    if (this.#started) throw new TwillError("Internal", "link monitor already started");
    this.#started = true;
    let firstList!: () => void;
    let firstFailed!: (e: unknown) => void;
    const ready = new Promise<void>((resolve, reject) => {
      firstList = resolve;
      firstFailed = reject;
    });
    const done = this.#run(signal, firstList, firstFailed);
    await ready;
    return { done };
  }

  async #run(
    signal: AbortSignal,
    firstList: () => void,
    firstFailed: (e: unknown) => void,
  ): Promise<void> {
    const sleep = this.#options.sleep ?? defaultSleep;
    const baseDelay = this.#options.restartDelayMs ?? 200;
    let delay = baseDelay;
    let first = true;
    while (!signal.aborted) {
      const round = new AbortController();
      const stopRound = () => round.abort();
      signal.addEventListener("abort", stopRound, { once: true });
      let started = false;
      let markStarted!: () => void;
      const startedP = new Promise<void>((resolve) => (markStarted = resolve));
      let watchError: unknown;
      const watching = this.#source
        .watch((e) => this.#onEvent(e), {
          signal: round.signal,
          onStarted: () => {
            started = true;
            markStarted();
          },
        })
        .catch((err: unknown) => {
          watchError = err ?? new TwillError("Unavailable", "link monitor broke");
        });
      await Promise.race([startedP, watching]);
      let listError: unknown;
      if (started) {
        // The list comes after the monitor runs (plus a moment for it to
        // subscribe), so no change falls between the two.
        await sleep(SUBSCRIBE_GRACE_MS, round.signal);
        const refresher = this.#refreshLoop(
          round.signal,
          sleep,
          () => {
            if (first) {
              first = false;
              firstList();
            }
          },
          // Without a first list the monitor's events mean nothing: start over.
          () => round.abort(),
        );
        await watching;
        round.abort();
        listError = await refresher;
      }
      signal.removeEventListener("abort", stopRound);
      round.abort();
      if (watchError !== undefined && !signal.aborted) this.#options.onError?.(watchError);
      if (first) {
        // The monitor or the first list failed: start() reports it and the monitor stops.
        firstFailed(
          listError ??
            watchError ??
            new TwillError("Unavailable", "link monitor stopped before listing links"),
        );
        return;
      }
      if (signal.aborted) break;
      delay = started && listError === undefined ? baseDelay : Math.min(delay * 2, 30_000);
      await sleep(delay, signal);
    }
    if (first) firstFailed(new TwillError("Aborted", "link monitor stopped before listing links"));
  }

  /** Lists links now and then every refreshIntervalMs; resolves with the first error of the initial list. */
  async #refreshLoop(
    signal: AbortSignal,
    sleep: (ms: number, signal: AbortSignal) => Promise<void>,
    onListed: () => void,
    onListFailed: () => void,
  ): Promise<unknown> {
    try {
      await this.#relist(signal);
      onListed();
    } catch (err) {
      if (!signal.aborted) this.#options.onError?.(err);
      onListFailed();
      return err;
    }
    const every = this.#options.refreshIntervalMs;
    while (every > 0 && !signal.aborted) {
      await sleep(every, signal);
      if (signal.aborted) break;
      try {
        await this.#relist(signal);
      } catch (err) {
        if (!signal.aborted) this.#options.onError?.(err);
      }
    }
    return undefined;
  }

  async #relist(signal: AbortSignal): Promise<void> {
    const now = await this.#source.list(signal);
    if (signal.aborted) return;
    const seen = new Set<string>();
    for (const link of now) {
      seen.add(link.name);
      this.#put(link);
    }
    for (const name of [...this.#links.keys()]) {
      if (!seen.has(name)) {
        this.#links.delete(name);
        this.#options.onChange(name, undefined);
      }
    }
  }

  #onEvent(e: LinkEvent): void {
    if (e.deleted) {
      const known = this.#links.get(e.link.name);
      if (known && known.index === e.link.index) {
        this.#links.delete(e.link.name);
        this.#options.onChange(e.link.name, undefined);
      }
      return;
    }
    // A rename keeps the index: the old name is gone.
    for (const [name, l] of this.#links) {
      if (l.index === e.link.index && name !== e.link.name) {
        this.#links.delete(name);
        this.#options.onChange(name, undefined);
      }
    }
    this.#put(e.link);
  }

  #put(link: Link): void {
    const known = this.#links.get(link.name);
    if (known && known.index === link.index && known.up === link.up) return;
    // Same name, new index: the interface was re-created; report it as new.
    this.#links.set(link.name, link);
    this.#options.onChange(link.name, link);
  }
}

// ---------------------------------------------------------------------------
// The real source: iproute2.

/** Parses one line of `ip -o monitor link`. */
export function parseMonitorLine(line: string): LinkEvent | undefined {
  const m = /^(Deleted )?([0-9]+): ([^:@\s]+)(?:@[^:\s]*)?: <([^>]*)>/.exec(line.trim());
  if (!m) return undefined;
  const flags = (m[4] ?? "").split(",");
  return {
    deleted: m[1] !== undefined,
    link: { name: m[3] ?? "", index: Number(m[2]), up: flags.includes("UP") },
  };
}

export function ipLinkSource(
  run: RunCommand,
  options: { ipCommand?: readonly string[] } = {},
): LinkSource {
  // ipCommand: how to run ip (tests: ["ip", "netns", "exec", ns, "ip"]).
  const [file, ...prefix] = options.ipCommand ?? ["ip"];
  const ip = file ?? "ip";
  return {
    async list(signal) {
      const args = [...prefix, "-j", "link", "show"];
      const r = await run(ip, args, signal ? { signal } : {});
      if (r.code !== 0)
        throw new TwillError("Unavailable", `ip -j link show failed: ${stderrSummary(r.stderr)}`);
      const rows = JSON.parse(r.stdout || "[]") as {
        ifindex: number;
        ifname: string;
        flags?: string[];
      }[];
      return rows.map((row) => ({
        name: row.ifname,
        index: row.ifindex,
        up: (row.flags ?? []).includes("UP"),
      }));
    },
    watch(onEvent, { signal, onStarted }) {
      return new Promise<void>((resolve, reject) => {
        if (signal.aborted) return resolve();
        const child = spawn(ip, [...prefix, "-o", "monitor", "link"], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let buffered = "";
        let stderr = "";
        const onAbort = () => child.kill("SIGTERM");
        signal.addEventListener("abort", onAbort, { once: true });
        child.once("spawn", onStarted);
        child.stdout.setEncoding("utf8");
        child.stdout.on("data", (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            const e = parseMonitorLine(line);
            if (e) onEvent(e);
          }
        });
        child.stderr.setEncoding("utf8");
        child.stderr.on("data", (chunk: string) => {
          if (stderr.length < 4096) stderr += chunk;
        });
        child.once("error", (err) => {
          signal.removeEventListener("abort", onAbort);
          reject(
            new TwillError("Unavailable", `cannot run ip monitor: ${err.message}`, { cause: err }),
          );
        });
        child.once("close", (code, sig) => {
          signal.removeEventListener("abort", onAbort);
          if (signal.aborted) resolve();
          else {
            reject(
              new TwillError(
                "Unavailable",
                `ip monitor link ended (${sig ?? `exit ${code}`})${stderr ? `: ${stderrSummary(stderr)}` : ""}`,
              ),
            );
          }
        });
      });
    },
  };
}

// ---------------------------------------------------------------------------
// The fake source.

export interface FakeLinkSource extends LinkSource {
  /** Add or change a link; watchers hear of it. */
  set(name: string, up: boolean): Link;
  /** Remove a link; `silent` tells no watcher (as if an event were lost). */
  remove(name: string, options?: { silent?: boolean }): void;
  /** The next list fails. */
  failNextList(message?: string): void;
  /** Break the current watch (as if the monitor process died). */
  breakWatch(): void;
  readonly watchers: number;
  readonly lists: number;
}

export function fakeLinkSource(initial: Record<string, boolean> = {}): FakeLinkSource {
  const links = new Map<string, Link>();
  let nextIndex = 1;
  const watchers = new Set<{ onEvent: (e: LinkEvent) => void; fail: (e: unknown) => void }>();
  let listFailure: string | undefined;
  let lists = 0;
  const set = (name: string, up: boolean): Link => {
    const link = { name, index: links.get(name)?.index ?? nextIndex++, up };
    links.set(name, link);
    for (const w of watchers) w.onEvent({ link, deleted: false });
    return link;
  };
  for (const [name, up] of Object.entries(initial)) set(name, up);
  return {
    set,
    remove(name, options = {}) {
      const link = links.get(name);
      if (!link) return;
      links.delete(name);
      if (options.silent) return;
      for (const w of watchers) w.onEvent({ link, deleted: true });
    },
    failNextList(message = "injected list failure") {
      listFailure = message;
    },
    breakWatch() {
      for (const w of [...watchers]) w.fail(new TwillError("Unavailable", "fake monitor broke"));
    },
    get watchers() {
      return watchers.size;
    },
    get lists() {
      return lists;
    },
    async list() {
      lists++;
      if (listFailure !== undefined) {
        const m = listFailure;
        listFailure = undefined;
        throw new TwillError("Unavailable", m);
      }
      return [...links.values()].map((l) => ({ ...l }));
    },
    watch(onEvent, { signal, onStarted }) {
      return new Promise<void>((resolve, reject) => {
        const w = {
          onEvent,
          fail: (e: unknown) => {
            watchers.delete(w);
            reject(e);
          },
        };
        watchers.add(w);
        signal.addEventListener(
          "abort",
          () => {
            watchers.delete(w);
            resolve();
          },
          { once: true },
        );
        onStarted();
      });
    },
  };
}
