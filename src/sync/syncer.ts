// The datastore syncer: the first stage of the agent. It turns the datastore
// into one ordered stream of batches of updates for the calculation graph:
//
//   ResourceStore ──listAll (one revision)──► held: key → resourceVersion
//        │                                        │ diff
//        └──watch(from revision)──► dedupe ───────┴──► onUpdates([put|delete|status…])
//
// Life cycle and the status it reports (status updates travel in the same
// stream as the resources, so nothing downstream acts on a partial picture):
//
//   "waiting"    first, until one consistent snapshot has been read: every
//                kind of interest with ONE backend list, so all of it is at one
//                revision. Delivered as one batch of puts ending in "in-sync".
//   "in-sync"    watching from the snapshot's revision; each batch holds the
//                events that were ready together (all events of one datastore
//                transaction arrive in one batch), at most MAX_WATCH_BATCH.
//   "resyncing"  the watch's start revision was compacted away: list again and
//                send only the difference from what is held (puts for new or
//                changed resourceVersions, synthesised deletes for keys that
//                vanished), ending in "in-sync". Never a flush of everything.
//
// A broken watch (TwillError "Unavailable", or the iterator ending when we
// did not ask it to) resumes from the last revision seen, after a bounded
// exponential backoff; the status stays "in-sync", as nothing is lost, only
// delayed. It resumes one revision early, so that events of a transaction
// split by the break are not lost, and relies on the dedupe below to drop
// what it already delivered.
//
// Invariants:
// - Each change is delivered once: a put whose resourceVersion is not newer
//   than the one held, or a delete of a key not held, is dropped.
// - Only the kinds of interest are delivered (default: every kind).
// - onUpdates runs synchronously, one batch at a time, never with an empty
//   batch and never after the signal aborted. If it throws, the syncer stops
//   and `done` rejects with that error.
// - Errors other than "Unavailable" (a value that is not a resource, say)
//   are not retried: `done` rejects with them. "Unavailable" is retried until
//   the signal aborts, or `retry.maxAttempts` consecutive failures.

import { KINDS, kindOf } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { DEFAULT_NAMESPACE } from "../datastore/resource-store.js";
import type { ResourceEvent, ResourceStore } from "../datastore/resource-store.js";
import { TwillError, isErrorCode } from "../util/errors.js";
import { sleep } from "../util/sleep.js";

export type SyncStatus = "waiting" | "resyncing" | "in-sync";

export type SyncUpdate =
  /** Created or changed: the full resource, with its resourceVersion. */
  | { type: "put"; resource: Resource }
  | { type: "delete"; kind: KindInfo; name: string; namespace?: string }
  | { type: "status"; status: SyncStatus };

/** Structured logging: a message and fields, never interpolated values. */
export interface SyncLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface SyncerOptions {
  /** The kinds to deliver (default: every kind twill knows). */
  kinds?: readonly KindInfo[];
  /** Aborting stops the syncer; `done` then resolves. */
  signal: AbortSignal;
  retry?: {
    /** First delay after a failure (default 100 ms); doubles with each consecutive one. */
    initialDelayMs?: number;
    /** Upper bound of the delay (default 10 000 ms). */
    maxDelayMs?: number;
    /** Give up after this many consecutive failures (default: never). */
    maxAttempts?: number;
    /**
     * A number in [0, 1) drawn per retry (default Math.random): the delay is
     * cut by up to half of it, so many agents that lost the same etcd do not
     * all come back in the same instant.
     */
    jitter?: () => number;
  };
  /** Wait `ms`, or less if `signal` aborts (default: a timer). Never rejects. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  logger?: SyncLogger;
}

export interface SyncStats {
  /** Fresh lists forced by a compacted watch (the initial snapshot not counted). */
  resyncs: number;
  /** Watches resumed after they broke or ended. */
  watchRestarts: number;
  /** Lists retried after a failure. */
  listRetries: number;
  /** The datastore revision everything delivered so far reflects. */
  revision: number;
}

export interface Syncer {
  /** Resolves when the signal aborts; rejects when the syncer fails for good. */
  done: Promise<void>;
  status(): SyncStatus;
  stats(): SyncStats;
}

export const DEFAULT_INITIAL_DELAY_MS = 100;
export const DEFAULT_MAX_DELAY_MS = 10_000;
/** A busy watch is cut into batches of at most this many updates. */
export const MAX_WATCH_BATCH = 1000;

/** Start syncing `store` into `onUpdates`; see the file header for the contract. */
export function startSyncer(
  store: ResourceStore,
  onUpdates: (updates: SyncUpdate[]) => void,
  options: SyncerOptions,
): Syncer {
  const syncer = new ResourceSyncer(store, onUpdates, options);
  const done = syncer.run();
  return { done, status: () => syncer.status, stats: () => syncer.stats() };
}

interface Held {
  kind: KindInfo;
  name: string;
  namespace: string | undefined;
  resourceVersion: number;
}

type WatchOutcome = "compacted" | "broken" | "stopped";

const IDLE = Symbol("idle");

class ResourceSyncer {
  status: SyncStatus = "waiting";
  readonly #store: ResourceStore;
  readonly #onUpdates: (updates: SyncUpdate[]) => void;
  readonly #kinds: readonly KindInfo[] | undefined;
  readonly #wanted: ReadonlySet<string>;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #jitter: () => number;
  readonly #maxAttempts: number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #logger: SyncLogger | undefined;
  /** Aborted by the caller's signal, or by us when onUpdates throws. */
  readonly #stop = new AbortController();
  readonly #held = new Map<string, Held>();
  #listRevision = 0;
  #eventRevision = 0;
  #failures = 0;
  #resyncs = 0;
  #watchRestarts = 0;
  #listRetries = 0;
  /** onUpdates threw: its error is on its way to `done`. */
  #handlerFailed = false;
  /** Why the last watch broke, for the log and for giving up. */
  #watchError: unknown;

  constructor(
    store: ResourceStore,
    onUpdates: (updates: SyncUpdate[]) => void,
    options: SyncerOptions,
  ) {
    this.#store = store;
    this.#onUpdates = onUpdates;
    this.#kinds = options.kinds;
    this.#wanted = new Set((options.kinds ?? KINDS).map((k) => k.id));
    this.#initialDelayMs = options.retry?.initialDelayMs ?? DEFAULT_INITIAL_DELAY_MS;
    this.#maxDelayMs = options.retry?.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this.#maxAttempts = options.retry?.maxAttempts ?? Infinity;
    this.#jitter = options.retry?.jitter ?? Math.random;
    this.#sleep = options.sleep ?? sleep;
    this.#logger = options.logger;
    const signal = options.signal;
    if (signal.aborted) this.#stop.abort();
    else signal.addEventListener("abort", () => this.#stop.abort(), { once: true });
  }

  stats(): SyncStats {
    return {
      resyncs: this.#resyncs,
      watchRestarts: this.#watchRestarts,
      listRetries: this.#listRetries,
      revision: Math.max(this.#listRevision, this.#eventRevision),
    };
  }

  async run(): Promise<void> {
    // Let startSyncer return before the first callback.
    await Promise.resolve();
    this.#emit([{ type: "status", status: "waiting" }]);
    let needList = true;
    while (!this.#stopped) {
      if (needList) {
        if (!(await this.#snapshot())) return;
        needList = false;
      }
      const outcome = await this.#watchOnce();
      if (outcome === "stopped" || this.#stopped) return;
      if (outcome === "compacted") {
        this.#resyncs += 1;
        this.#setStatus("resyncing");
        needList = true;
      } else {
        this.#watchRestarts += 1;
        await this.#backoff("watch", { fromRevision: this.#resumeRevision() }, this.#watchError);
      }
    }
  }

  get #stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  /** List, diff against what is held, deliver; false when stopped first. */
  async #snapshot(): Promise<boolean> {
    let listed: { items: Resource[]; revision: number };
    for (;;) {
      try {
        listed = await this.#store.listAll(this.#kinds ? { kinds: this.#kinds } : {});
        break;
      } catch (err) {
        if (this.#stopped) return false;
        if (!isErrorCode(err, "Unavailable")) throw err;
        this.#listRetries += 1;
        await this.#backoff("list", { status: this.status }, err);
        if (this.#stopped) return false;
      }
    }
    if (this.#stopped) return false;
    this.#failures = 0;
    const resync = this.status === "resyncing";
    const seen = new Set<string>();
    const puts: SyncUpdate[] = [];
    for (const resource of listed.items) {
      const id = this.#identify(resource);
      if (!id) continue;
      seen.add(id.key);
      const held = this.#held.get(id.key);
      if (held && held.resourceVersion === id.held.resourceVersion) continue;
      this.#held.set(id.key, id.held);
      puts.push({ type: "put", resource });
    }
    const deletes: SyncUpdate[] = [];
    for (const [key, held] of this.#held) {
      if (seen.has(key)) continue;
      this.#held.delete(key);
      deletes.push(deleteUpdate(held.kind, held.name, held.namespace));
    }
    this.#listRevision = listed.revision;
    this.#eventRevision = 0;
    this.status = "in-sync";
    this.#emit([...deletes, ...puts, { type: "status", status: "in-sync" }]);
    this.#logger?.info(resync ? "resync done" : "snapshot done", {
      revision: listed.revision,
      resources: this.#held.size,
      puts: puts.length,
      deletes: deletes.length,
    });
    return true;
  }

  /** Watch until the watch breaks, is compacted, or we stop. */
  async #watchOnce(): Promise<WatchOutcome> {
    const only = this.#kinds?.length === 1 ? this.#kinds[0] : undefined;
    const events = this.#store.watch({
      ...(only ? { kind: only } : {}),
      fromRevision: this.#resumeRevision(),
      signal: this.#stop.signal,
    });
    const it = events[Symbol.asyncIterator]();
    let pending: SyncUpdate[] = [];
    const flush = (): void => {
      const batch = pending;
      pending = [];
      this.#emit(batch);
    };
    /** A next() not yet settled: return() would queue behind it. */
    let inFlight: Promise<unknown> | undefined;
    try {
      for (;;) {
        const next = it.next();
        inFlight = next;
        let result: IteratorResult<ResourceEvent> | typeof IDLE;
        if (pending.length > 0) {
          // Batch what is ready now; deliver as soon as the stream goes quiet.
          result = await Promise.race([next, nextTurn()]);
          if (result === IDLE) {
            flush();
            result = await next;
          }
        } else {
          result = await next;
        }
        inFlight = undefined;
        if (result.done) {
          flush();
          if (this.#stopped) return "stopped";
          this.#watchError = new TwillError("Unavailable", "the watch ended unexpectedly");
          return "broken";
        }
        const ev = result.value;
        if (ev.type === "compacted") {
          flush();
          this.#logger?.info("watch revision compacted: resyncing", {
            fromRevision: this.#resumeRevision(),
            compactRevision: ev.compactRevision,
          });
          return "compacted";
        }
        this.#failures = 0;
        this.#onEvent(ev, pending);
        if (pending.length >= MAX_WATCH_BATCH) flush();
      }
    } catch (err) {
      if (this.#handlerFailed) throw err;
      inFlight = undefined;
      // Events that arrived before the failure are good: deliver them.
      flush();
      if (this.#stopped) return "stopped";
      if (!isErrorCode(err, "Unavailable")) throw err;
      this.#watchError = err;
      return "broken";
    } finally {
      // Close the watch before going on. A next() still in flight (onUpdates
      // threw meanwhile) is released by the abort in #emit.
      if (inFlight) await inFlight.catch(() => undefined);
      await it.return?.();
    }
  }

  #onEvent(ev: ResourceEvent & { type: "put" | "delete" }, out: SyncUpdate[]): void {
    if (ev.type === "put") {
      const id = this.#identify(ev.resource);
      if (id) {
        this.#advance(id.held.resourceVersion);
        const held = this.#held.get(id.key);
        if (!held || held.resourceVersion < id.held.resourceVersion) {
          this.#held.set(id.key, id.held);
          out.push({ type: "put", resource: ev.resource });
        }
      } else {
        this.#advance(Number(ev.resource.metadata.resourceVersion));
      }
      return;
    }
    this.#advance(ev.revision);
    if (!this.#wanted.has(ev.kind.id)) return;
    const key = heldKey(ev.kind, ev.name, ev.namespace);
    const held = this.#held.get(key);
    if (!held || held.resourceVersion > ev.revision) return;
    this.#held.delete(key);
    out.push(deleteUpdate(ev.kind, ev.name, ev.namespace));
  }

  /** The held-map key and entry of a resource of interest, or undefined. */
  #identify(resource: Resource): { key: string; held: Held } | undefined {
    const kind = kindOf(resource.apiVersion, resource.kind);
    if (!kind || !this.#wanted.has(kind.id)) return undefined;
    const name = resource.metadata.name;
    const namespace = kind.namespaced
      ? (resource.metadata.namespace ?? DEFAULT_NAMESPACE)
      : undefined;
    const resourceVersion = Number(resource.metadata.resourceVersion);
    return {
      key: heldKey(kind, name, namespace),
      held: { kind, name, namespace, resourceVersion },
    };
  }

  #advance(revision: number): void {
    if (Number.isSafeInteger(revision) && revision > this.#eventRevision) {
      this.#eventRevision = revision;
    }
  }

  /**
   * Where the next watch starts (exclusive). One revision before the last
   * event seen, so a transaction split by a break is replayed whole; the
   * dedupe drops the half already delivered.
   */
  #resumeRevision(): number {
    return this.#eventRevision > this.#listRevision ? this.#eventRevision - 1 : this.#listRevision;
  }

  async #backoff(what: string, fields: Record<string, unknown>, err?: unknown): Promise<void> {
    this.#failures += 1;
    if (this.#failures >= this.#maxAttempts) {
      throw new TwillError(
        "Unavailable",
        `datastore sync gave up: ${what} failed ${this.#failures} times in a row`,
        err === undefined ? undefined : { cause: err },
      );
    }
    const ceilingMs = Math.min(
      this.#maxDelayMs,
      this.#initialDelayMs * 2 ** Math.min(this.#failures - 1, 52),
    );
    const delayMs = Math.round(ceilingMs * (1 - 0.5 * this.#jitter()));
    this.#logger?.warn(`${what} failed: retrying`, {
      ...fields,
      attempt: this.#failures,
      delayMs,
      ...(err === undefined ? {} : { error: String(err) }),
    });
    await this.#sleep(delayMs, this.#stop.signal);
  }

  #setStatus(status: SyncStatus): void {
    this.status = status;
    this.#emit([{ type: "status", status }]);
  }

  #emit(batch: SyncUpdate[]): void {
    if (batch.length === 0 || this.#stopped) return;
    try {
      this.#onUpdates(batch);
    } catch (err) {
      // Stop everything (the watch included) and let `done` reject.
      this.#handlerFailed = true;
      this.#stop.abort();
      throw err;
    }
  }
}

function heldKey(kind: KindInfo, name: string, namespace: string | undefined): string {
  return namespace === undefined ? `${kind.id}/${name}` : `${kind.id}/${namespace}/${name}`;
}

function deleteUpdate(kind: KindInfo, name: string, namespace: string | undefined): SyncUpdate {
  return namespace === undefined
    ? { type: "delete", kind, name }
    : { type: "delete", kind, name, namespace };
}

function nextTurn(): Promise<typeof IDLE> {
  return new Promise((resolve) => setImmediate(() => resolve(IDLE)));
}
