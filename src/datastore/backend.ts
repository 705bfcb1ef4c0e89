// The key-value backend contract: the small interface that both the etcd
// backend and the in-memory backend implement, and that the one contract
// test suite (backend-contract.ts) checks. Everything above it (resources,
// IPAM) is written once against this interface.
//
// Semantics follow etcd v3:
// - One global revision counter, incremented by every successful write
//   transaction (a transaction that writes several keys bumps it once).
// - Each key has createRevision (0 when absent), modRevision and version.
// - Transactions: compare every `compare`, then run `success` or `failure`
//   ops atomically.
// - Watch delivers every event after `fromRevision` (exclusive: events with
//   modRevision > fromRevision), in revision order. If `fromRevision` has been
//   compacted the watch yields one `compacted` event and ends; the caller
//   must re-list.
// - Limits as etcd's defaults: a transaction that writes one key twice in a
//   branch, has more than 128 ops in a branch or exceeds 1.5 MiB is rejected
//   with TwillError "Invalid". Connection failures are "Unavailable", and
//   every call on a closed backend is too.

export interface KvEntry {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
}

export type Compare =
  /** The key's modRevision equals `revision` (0 means "key absent"). */
  | { key: string; target: "modRevision"; equals: number }
  /** The key's createRevision equals `revision` (0 means "key absent"). */
  | { key: string; target: "createRevision"; equals: number }
  /** The key's value equals `value` (false when absent). */
  | { key: string; target: "value"; equals: string };

export type Op =
  | { type: "put"; key: string; value: string }
  | { type: "delete"; key: string }
  | { type: "get"; key: string };

export interface TxnRequest {
  compare: Compare[];
  success: Op[];
  failure?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  /** The store's revision after the transaction (unchanged when nothing was written). */
  revision: number;
  /** For each `get` op that ran, in order: the entry or undefined. */
  gets: (KvEntry | undefined)[];
  /** For each `delete` op that ran, in order: the entry it removed or undefined. */
  deleted: (KvEntry | undefined)[];
}

export type WatchEvent =
  | { type: "put"; entry: KvEntry; prev?: KvEntry }
  | { type: "delete"; key: string; modRevision: number; prev?: KvEntry }
  /** The requested start revision was compacted: re-list, then watch again. */
  | { type: "compacted"; compactRevision: number };

export interface WatchOptions {
  /** Deliver events with modRevision > fromRevision. */
  fromRevision: number;
  signal?: AbortSignal;
}

export interface Backend {
  get(key: string): Promise<KvEntry | undefined>;
  /** Every key starting with `prefix`, sorted by key, and the revision they were read at. */
  list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }>;
  /** Run one transaction atomically; TwillError "Invalid" for what etcd would refuse (see above). */
  txn(request: TxnRequest): Promise<TxnResult>;
  /**
   * Events for keys under `prefix`. The iterator ends when the signal aborts
   * (without throwing), after a `compacted` event, or throws a TwillError with
   * code "Unavailable" when the connection is lost for good or the backend is
   * closed. A `fromRevision` below 0 is "Invalid".
   */
  watch(prefix: string, options: WatchOptions): AsyncIterable<WatchEvent>;
  /**
   * Discard history before `revision` (used by tests and maintenance).
   * Compacting to an already compacted revision does nothing; a revision
   * ahead of the current one is "Invalid".
   */
  compact(revision: number): Promise<void>;
  /** The current revision. */
  revision(): Promise<number>;
  close(): Promise<void>;
  /**
   * Several keys and prefixes read at one revision in one request (one
   * etcd transaction of range requests). Optional: readMany() below falls
   * back to separate reads for a backend without it.
   */
  readMany?(request: ReadManyRequest): Promise<ReadManyResult>;
}

export interface ReadManyRequest {
  keys: readonly string[];
  prefixes: readonly string[];
}

export interface ReadManyResult {
  /** Each of the request's keys: its entry, or undefined. */
  gets: Map<string, KvEntry | undefined>;
  /** Each of the request's prefixes: every entry under it, sorted by key. */
  lists: Map<string, KvEntry[]>;
}

/**
 * Reads `keys` and lists `prefixes` together: in one request at one
 * revision where the backend has readMany, else by separate reads at once.
 */
export async function readMany(
  backend: Backend,
  request: ReadManyRequest,
): Promise<ReadManyResult> {
  // etcd refuses a transaction of more than --max-txn-ops (128) requests.
  if (backend.readMany && request.keys.length + request.prefixes.length <= 64) {
    return backend.readMany(request);
  }
  const [gets, lists] = await Promise.all([
    Promise.all(request.keys.map(async (k) => [k, await backend.get(k)] as const)),
    Promise.all(request.prefixes.map(async (p) => [p, (await backend.list(p)).entries] as const)),
  ]);
  return { gets: new Map(gets), lists: new Map(lists) };
}
