// An in-memory Backend with etcd v3's semantics, for unit tests of everything
// above the datastore and for `--datastore memory` experiments. It passes the
// same contract suite as the etcd backend (backend-contract.ts).
//
// Invariants, as in etcd:
// - One global revision, starting at 1 (a fresh etcd reports revision 1).
//   A transaction that changes at least one key bumps it by exactly one; a
//   transaction that only reads, or deletes nothing, leaves it alone.
// - History keeps every event with revision >= compactRevision. A watch may
//   start at any revision >= compactRevision (start = fromRevision + 1); an
//   older start yields one `compacted` event. A replayed event at exactly the
//   compact revision has no `prev`: etcd has discarded the superseded value.
// - Transactions are validated like etcd validates them: at most 128 ops per
//   branch (--max-txn-ops), no key written twice in one branch, at most
//   1.5 MiB of keys and values (--max-request-bytes).
//
// For tests of the code above it: `failNext(n, error)` makes the next n calls
// fail, `breakWatches(error)` makes every open watch throw, `dump()` shows
// the contents for golden comparisons.

import { TwillError } from "../util/errors.js";
import { AsyncQueue } from "./async-queue.js";
import type {
  Backend,
  Compare,
  KvEntry,
  Op,
  TxnRequest,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from "./backend.js";

/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPS = 128;
/** etcd's default --max-request-bytes (1.5 MiB). */
export const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

interface HistoryRecord {
  revision: number;
  event: WatchEvent & { type: "put" | "delete" };
}

type WatchItem =
  { kind: "event"; event: WatchEvent } | { kind: "error"; error: unknown } | { kind: "wake" };

interface Subscriber {
  prefix: string;
  queue: AsyncQueue<WatchItem>;
}

export class MemoryBackend implements Backend {
  #revision = 1;
  #compactRevision = 0;
  #keys = new Map<string, KvEntry>();
  #history: HistoryRecord[] = [];
  #subscribers = new Set<Subscriber>();
  #closed = false;
  #faults: { remaining: number; error: unknown } | undefined;

  async get(key: string): Promise<KvEntry | undefined> {
    this.#enter();
    const entry = this.#keys.get(key);
    return entry && { ...entry };
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    this.#enter();
    const entries: KvEntry[] = [];
    for (const entry of this.#keys.values()) {
      if (entry.key.startsWith(prefix)) entries.push({ ...entry });
    }
    entries.sort((a, b) => compareKeys(a.key, b.key));
    return { entries, revision: this.#revision };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.#enter();
    validateTxn(request);
    const succeeded = request.compare.every((c) => this.#holds(c));
    const ops = succeeded ? request.success : (request.failure ?? []);
    const revision = this.#revision + 1;
    const gets: (KvEntry | undefined)[] = [];
    const deleted: (KvEntry | undefined)[] = [];
    const events: HistoryRecord["event"][] = [];
    for (const op of ops) {
      const current = this.#keys.get(op.key);
      switch (op.type) {
        case "get":
          gets.push(current && { ...current });
          break;
        case "put": {
          const entry: KvEntry = {
            key: op.key,
            value: op.value,
            createRevision: current ? current.createRevision : revision,
            modRevision: revision,
            version: current ? current.version + 1 : 1,
          };
          this.#keys.set(op.key, entry);
          events.push(current ? { type: "put", entry, prev: current } : { type: "put", entry });
          break;
        }
        case "delete":
          deleted.push(current && { ...current });
          if (current) {
            this.#keys.delete(op.key);
            events.push({ type: "delete", key: op.key, modRevision: revision, prev: current });
          }
          break;
      }
    }
    if (events.length > 0) {
      this.#revision = revision;
      for (const event of events) {
        this.#history.push({ revision, event });
        const key = event.type === "put" ? event.entry.key : event.key;
        for (const sub of this.#subscribers) {
          if (key.startsWith(sub.prefix))
            sub.queue.push({ kind: "event", event: copyEvent(event) });
        }
      }
    }
    return { succeeded, revision: this.#revision, gets, deleted };
  }

  watch(prefix: string, options: WatchOptions): AsyncIterable<WatchEvent> {
    return { [Symbol.asyncIterator]: () => this.#watch(prefix, options) };
  }

  async compact(revision: number): Promise<void> {
    this.#enter();
    if (!Number.isSafeInteger(revision) || revision > this.#revision) {
      throw new TwillError(
        "Invalid",
        `cannot compact to revision ${revision}: the current revision is ${this.#revision}`,
      );
    }
    // Like etcd, compacting to an already compacted revision is harmless.
    if (revision <= this.#compactRevision) return;
    this.#compactRevision = revision;
    this.#history = this.#history.filter((r) => r.revision >= revision);
  }

  async revision(): Promise<number> {
    this.#enter();
    return this.#revision;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new TwillError("Unavailable", "the memory datastore was closed");
    for (const sub of this.#subscribers) sub.queue.push({ kind: "error", error });
  }

  /**
   * Make the next `count` calls of get, list, txn, compact and revision
   * reject with `error` (default: TwillError "Unavailable"). Watches are not
   * affected: use breakWatches for them.
   */
  failNext(count: number, error?: unknown): void {
    this.#faults = {
      remaining: count,
      error: error ?? new TwillError("Unavailable", "injected fault: the datastore is unavailable"),
    };
  }

  /** Make every open watch throw `error` (default: TwillError "Unavailable"). */
  breakWatches(error?: unknown): void {
    const e = error ?? new TwillError("Unavailable", "injected fault: the watch was lost");
    for (const sub of this.#subscribers) sub.queue.push({ kind: "error", error: e });
  }

  /** Every key and its value, sorted by key: stable across runs, for golden tests. */
  dump(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of [...this.#keys.keys()].sort(compareKeys)) {
      out[key] = (this.#keys.get(key) as KvEntry).value;
    }
    return out;
  }

  /** The revision history was last compacted to (0 when never). */
  get compactRevision(): number {
    return this.#compactRevision;
  }

  /** Number of open watches (tests use it to check that iterators clean up). */
  get watchCount(): number {
    return this.#subscribers.size;
  }

  #enter(): void {
    if (this.#closed) throw new TwillError("Unavailable", "the memory datastore was closed");
    const faults = this.#faults;
    if (faults && faults.remaining > 0) {
      faults.remaining -= 1;
      if (faults.remaining === 0) this.#faults = undefined;
      throw faults.error;
    }
  }

  #holds(c: Compare): boolean {
    const entry = this.#keys.get(c.key);
    switch (c.target) {
      case "modRevision":
        return (entry?.modRevision ?? 0) === c.equals;
      case "createRevision":
        return (entry?.createRevision ?? 0) === c.equals;
      case "value":
        return entry !== undefined && entry.value === c.equals;
    }
  }

  async *#watch(prefix: string, options: WatchOptions): AsyncGenerator<WatchEvent> {
    const { fromRevision, signal } = options;
    checkFromRevision(fromRevision);
    if (this.#closed) throw new TwillError("Unavailable", "the memory datastore was closed");
    if (signal?.aborted) return;
    if (fromRevision + 1 < this.#compactRevision) {
      yield { type: "compacted", compactRevision: this.#compactRevision };
      return;
    }
    // Replay and subscribe in one synchronous step, so no commit can fall
    // between the two.
    const queue = new AsyncQueue<WatchItem>();
    for (const record of this.#history) {
      const { event } = record;
      const key = event.type === "put" ? event.entry.key : event.key;
      if (record.revision <= fromRevision || !key.startsWith(prefix)) continue;
      const copy = copyEvent(event);
      if (record.revision === this.#compactRevision) delete copy.prev;
      queue.push({ kind: "event", event: copy });
    }
    const sub: Subscriber = { prefix, queue };
    this.#subscribers.add(sub);
    const onAbort = (): void => queue.push({ kind: "wake" });
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (signal?.aborted) return;
        const item = await queue.shift();
        if (signal?.aborted) return;
        if (item.kind === "error") throw item.error;
        if (item.kind === "event") yield item.event;
      }
    } finally {
      this.#subscribers.delete(sub);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** etcd orders keys by their bytes; for UTF-8 that is code point order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function checkFromRevision(fromRevision: number): void {
  if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) {
    throw new TwillError(
      "Invalid",
      `cannot watch from revision ${fromRevision}: expected an integer >= 0`,
    );
  }
}

/** Reject what etcd would reject before running a transaction. */
export function validateTxn(request: TxnRequest): void {
  let bytes = 0;
  for (const c of request.compare) bytes += Buffer.byteLength(c.key);
  for (const [branch, ops] of [
    ["success", request.success],
    ["failure", request.failure ?? []],
  ] as const) {
    if (ops.length > MAX_TXN_OPS) {
      throw new TwillError(
        "Invalid",
        `transaction has ${ops.length} ${branch} operations: at most ${MAX_TXN_OPS} are allowed`,
      );
    }
    const written = new Set<string>();
    for (const op of ops) {
      bytes += opBytes(op);
      if (op.type === "get") continue;
      if (written.has(op.key)) {
        throw new TwillError(
          "Invalid",
          `transaction writes key "${op.key}" twice in its ${branch} operations`,
        );
      }
      written.add(op.key);
    }
  }
  if (bytes > MAX_REQUEST_BYTES) {
    throw new TwillError(
      "Invalid",
      `transaction is ${bytes} bytes: at most ${MAX_REQUEST_BYTES} are allowed`,
    );
  }
}

function opBytes(op: Op): number {
  return Buffer.byteLength(op.key) + (op.type === "put" ? Buffer.byteLength(op.value) : 0);
}

function copyEvent(event: HistoryRecord["event"]): HistoryRecord["event"] {
  if (event.type === "put") {
    return event.prev
      ? { type: "put", entry: { ...event.entry }, prev: { ...event.prev } }
      : { type: "put", entry: { ...event.entry } };
  }
  return event.prev
    ? { type: "delete", key: event.key, modRevision: event.modRevision, prev: { ...event.prev } }
    : { type: "delete", key: event.key, modRevision: event.modRevision };
}
