// The transaction discipline every IPAM write follows: read the keys,
// compute the new values, then write them in ONE transaction that compares
// every key read (its modRevision, or createRevision 0 for "still absent").
// When another writer got in between the compare fails, nothing is written,
// and the caller reads again after a jittered, growing pause, a bounded
// number of times.
import type { Backend, Compare, KvEntry, Op } from "../datastore/backend.js";
import { TwillError } from "../util/errors.js";

/** etcd's default --max-txn-ops: the most gets one read transaction carries. */
const MAX_TXN_OPS = 128;

/**
 * Retries after the first attempt, unless the caller says otherwise. Every
 * lost race means another writer's change went through, so retries only
 * run out under heavy contention. The worst case is many allocations on one
 * host at once: they all race for the host's newest block (Calico
 * serializes them with a host-wide lock file; we may not), and exponential
 * backoff is unfair to the oldest racer. Against etcd on a busy 2-vCPU
 * machine, the slowest allocation needed 13 attempts with 50 racing per
 * host (200 in all), and 10-15 with 8 racing in a closed loop; 30 retries
 * leave room. Calico allows 100. Their pauses add up to at most ~7 s.
 */
export const DEFAULT_MAX_RETRIES = 30;
/**
 * First pause after a lost race; it doubles per retry up to MAX_BACKOFF_MS,
 * and the pause taken is uniformly random below it ("full jitter"), which
 * spreads racing writers apart. Measured against etcd with 50 racers per
 * host, 8/250 ms needed fewer attempts and less time than 2/100 ms.
 */
export const BASE_BACKOFF_MS = 8;
export const MAX_BACKOFF_MS = 250;

/** Entries already read in this attempt, by key (undefined: the key is absent). */
export type ReadCache = Map<string, KvEntry | undefined>;

export interface CommitResult {
  succeeded: boolean;
  /** On failure: the current entries of the keys asked for with readBackOnFailure. */
  fresh: ReadCache;
}

/** The keys one change reads and writes, turned into one transaction. */
export class ChangeSet {
  #compares = new Map<string, Compare>();
  #writes = new Map<string, Op>();
  #readBack = new Set<string>();

  /** The key must still be at the revision it was read at (absent when `entry` is undefined). */
  expect(key: string, entry: KvEntry | undefined): this {
    this.#compares.set(key, { key, target: "modRevision", equals: entry?.modRevision ?? 0 });
    return this;
  }

  /** The key must not exist (it is about to be created). */
  expectAbsent(key: string): this {
    this.#compares.set(key, { key, target: "createRevision", equals: 0 });
    return this;
  }

  /** The key must still be at `modRevision` (for keys read through the resource store). */
  expectRevision(key: string, modRevision: number): this {
    this.#compares.set(key, { key, target: "modRevision", equals: modRevision });
    return this;
  }

  put(key: string, value: unknown): this {
    this.#writes.set(key, { type: "put", key, value: JSON.stringify(value) });
    return this;
  }

  delete(key: string): this {
    this.#writes.set(key, { type: "delete", key });
    return this;
  }

  /** When the transaction fails, read `key` back in it, to learn why. */
  readBackOnFailure(key: string): this {
    this.#readBack.add(key);
    return this;
  }

  get writeCount(): number {
    return this.#writes.size;
  }

  /**
   * Runs the transaction; `succeeded` false means a compared key changed,
   * and `fresh` then holds the read-back keys' current entries.
   */
  async commit(backend: Backend): Promise<CommitResult> {
    for (const key of this.#writes.keys()) {
      if (!this.#compares.has(key)) {
        // Every written key must be compared: a blind write could undo
        // another writer's change.
        throw new TwillError("Internal", `IPAM would write "${key}" without comparing it`);
      }
    }
    const readBack = [...this.#readBack];
    const result = await backend.txn({
      compare: [...this.#compares.values()],
      success: [...this.#writes.values()],
      failure: readBack.map((key) => ({ type: "get", key })),
    });
    const fresh: ReadCache = new Map();
    if (!result.succeeded) readBack.forEach((key, i) => fresh.set(key, result.gets[i]));
    return { succeeded: result.succeeded, fresh };
  }
}

/**
 * Reads many keys with as few round trips as etcd's per-transaction op
 * limit allows; keys found in `cache` are taken from it instead.
 */
export async function readKeys(
  backend: Backend,
  keys: readonly string[],
  cache?: ReadCache,
): Promise<Map<string, KvEntry | undefined>> {
  const out = new Map<string, KvEntry | undefined>();
  const unique: string[] = [];
  for (const key of new Set(keys)) {
    if (cache?.has(key)) out.set(key, cache.get(key));
    else unique.push(key);
  }
  const chunks: string[][] = [];
  for (let i = 0; i < unique.length; i += MAX_TXN_OPS) {
    chunks.push(unique.slice(i, i + MAX_TXN_OPS));
  }
  const results = await Promise.all(
    chunks.map((chunk) =>
      backend.txn({ compare: [], success: chunk.map((key) => ({ type: "get", key })) }),
    ),
  );
  results.forEach((result, c) => {
    (chunks[c] as string[]).forEach((key, i) => out.set(key, result.gets[i]));
  });
  return out;
}

/** Parses a small JSON value of ours, naming the key when it is not JSON. */
export function parseJson(entry: KvEntry): unknown {
  try {
    return JSON.parse(entry.value);
  } catch (err) {
    throw new TwillError("Internal", `IPAM value at "${entry.key}" is not JSON`, { cause: err });
  }
}

export interface RetryDeps {
  sleep(ms: number): Promise<void>;
  random(): number;
  maxRetries: number;
  /** Called once per lost race (counted in Ipam.stats). */
  onRetry(): void;
}

/** Throws TwillError "Aborted" when the signal has fired. */
export function checkAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new TwillError("Aborted", `${what} was aborted`);
}

/**
 * Runs `attempt` until it returns a value other than undefined (undefined
 * means "a compare failed, read again"). After maxRetries lost races it
 * gives up with TwillError "Conflict" naming `what`.
 */
export async function withRetries<T>(
  deps: RetryDeps,
  what: string,
  signal: AbortSignal | undefined,
  attempt: (n: number) => Promise<T | undefined>,
): Promise<T> {
  for (let n = 1; ; n++) {
    checkAborted(signal, what);
    const result = await attempt(n);
    if (result !== undefined) return result;
    deps.onRetry();
    if (n > deps.maxRetries) {
      throw new TwillError(
        "Conflict",
        `${what}: the datastore kept changing under concurrent writers; gave up after ${n} attempts`,
      );
    }
    const cap = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** (n - 1));
    await deps.sleep(Math.floor(deps.random() * cap));
    checkAborted(signal, what);
  }
}
