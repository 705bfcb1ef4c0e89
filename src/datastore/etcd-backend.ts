// The Backend on a real etcd v3 cluster, through the `etcd3` npm client.
//
// We use etcd3's typed gRPC clients (`client.kv`, `client.watchClient`) rather
// than its builders, for two reasons found by trying against etcd 3.4:
// - Its Watcher drops the `compact_revision` of a watch response: a watch
//   from a compacted revision surfaces only as `error` "Watcher canceled: "
//   with an empty reason, so the compacted revision cannot be reported.
//   On the raw stream etcd sends {canceled: true, compact_revision: "<rev>"}.
// - Its Watcher resumes after a disconnect from the header revision of the
//   last response + 1, which can skip events still being replayed; we resume
//   from the last delivered event's revision + 1 instead (watch-resume.ts,
//   shared with the CNI plugin's backend, owns resuming and its backoff).
//
// Failure policy (etcd3 retries through cockatiel policies and its dial
// timeout option is not used by it, so a dead endpoint could stall a call):
// - etcd3's own retry and circuit-breaker policies are replaced by a
//   pass-through; every call here has a deadline of `dialTimeoutMs` (default
//   3000) for the whole operation, connection included, and a wall-clock
//   backstop in case gRPC does not honour it.
// - Reads are retried on connection errors (a fresh random endpoint each
//   time) within that deadline. Writes are retried only when no connection
//   was ever established, since a request that reached etcd may still commit.
// - A call that cannot reach etcd rejects with TwillError "Unavailable":
//   `cannot reach etcd at http://127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1`.
//   A write that ran out of time says its outcome is unknown: re-read first.
//
// TLS options are PEM file paths (the CLI's --etcd-*-file flags and their
// environment variables name files); they are read once, in the constructor.

import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  Etcd3,
  EtcdWatchStreamEnded,
  GRPCDeadlineExceededError,
  GRPCGenericError,
  GRPCInternalError,
  GRPCInvalidArgumentError,
  GRPCNotImplementedError,
  GRPCOutOfRangeError,
  GRPCProtocolError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  Range,
} from "etcd3";
import type { ICompare, IKeyValue, IOptions, IRequestOp, IWatchResponse } from "etcd3";
import { TwillError } from "../util/errors.js";
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
import { checkFromRevision } from "./memory-backend.js";
import { watchResume } from "./watch-resume.js";
import type { ChangeEvent, StreamReport, WatchResponse } from "./watch-resume.js";

export interface EtcdBackendOptions {
  /**
   * Client URLs, all `http://host:port` or all `https://host:port`, or
   * `unix:///path` (etcd listening on a unix socket, e.g. with
   * `--listen-client-urls unix://localhost:2379`, which names the socket
   * `localhost:2379` in etcd's working directory); several = one cluster.
   */
  endpoints: string[];
  /** PEM file paths: the CA bundle that signed the servers, a client certificate and its key. */
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: string;
  /** Deadline for each request, connecting included, in milliseconds (default 3000). */
  dialTimeoutMs?: number;
}

export const DEFAULT_DIAL_TIMEOUT_MS = 3000;

type Policy = NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/** How long an endpoint that could not be reached is passed over for the others. */
const SKIP_FAILED_HOST_MS = 1000;

/** A cockatiel-compatible policy that runs the call once: retries are ours. */
const passThrough = {
  execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T) =>
    fn({ signal: new AbortController().signal }),
} as unknown as Policy;

/** Thrown instead of calling an endpoint that failed moments ago. */
class EndpointSkipped extends Error {
  readonly last: unknown;
  constructor(last: unknown) {
    super(`recently unreachable: ${last instanceof Error ? last.message : String(last)}`);
    this.last = last;
  }
}

/**
 * The per-endpoint policy. etcd3's pool tries the next endpoint only when a
 * host policy refuses to call through, so an endpoint that just failed to
 * connect is refused for a moment: retries then land on the live endpoints
 * instead of a random, possibly dead one.
 */
function endpointGate(): Policy {
  let failedAt = 0;
  let last: unknown;
  const gate = {
    execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T) => {
      if (Date.now() - failedAt < SKIP_FAILED_HOST_MS) throw new EndpointSkipped(last);
      try {
        const result = await fn({ signal: new AbortController().signal });
        failedAt = 0;
        return result;
      } catch (err) {
        if (isConnectionError(err)) {
          failedAt = Date.now();
          last = err;
        }
        throw err;
      }
    },
  };
  return gate as unknown as Policy;
}

/** Check endpoint URLs the way the backend needs them; throws TwillError "Invalid". */
export function checkEndpoints(endpoints: readonly string[]): void {
  if (endpoints.length === 0) {
    throw new TwillError("Invalid", "no etcd endpoints given: expected at least one URL");
  }
  for (const endpoint of endpoints) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      url = undefined;
    }
    const ok =
      url !== undefined &&
      (url.protocol === "unix:"
        ? url.hostname === "" && url.pathname !== "" && url.pathname !== "/"
        : (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "");
    if (!ok) {
      throw new TwillError(
        "Invalid",
        `invalid etcd endpoint "${endpoint}": expected http://host:port, https://host:port or unix:///path/to/socket`,
      );
    }
  }
  const secure = endpoints.filter((e) => e.startsWith("https:")).length;
  if (secure !== 0 && secure !== endpoints.length) {
    throw new TwillError(
      "Invalid",
      `etcd endpoints mix http and https (${endpoints.join(", ")}): use one scheme for all`,
    );
  }
}

export class EtcdBackend implements Backend {
  readonly endpoints: readonly string[];
  #client: Etcd3;
  #timeoutMs: number;
  #closed = false;
  /** Aborted by close(): ends the open watches. */
  #closing = new AbortController();

  constructor(options: EtcdBackendOptions) {
    // Every open watch listens for close(): no limit to warn about.
    setMaxListeners(0, this.#closing.signal);
    checkEndpoints(options.endpoints);
    this.endpoints = [...options.endpoints];
    this.#timeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    if (!(this.#timeoutMs > 0)) {
      throw new TwillError("Invalid", `dialTimeoutMs must be positive, got ${this.#timeoutMs}`);
    }
    const timeoutMs = this.#timeoutMs;
    const clientOptions: IOptions = {
      hosts: this.endpoints.map((e) => e.replace(/\/+$/, "")),
      faultHandling: {
        global: passThrough,
        // With one endpoint there is nothing to fail over to: always call it.
        host: () => (this.endpoints.length > 1 ? endpointGate() : passThrough),
      },
      defaultCallOptions: (context) =>
        context.isStream ? {} : { deadline: Date.now() + timeoutMs },
      grpcOptions: {
        // A watch replaying a long history can exceed gRPC's 4 MB default.
        "grpc.max_receive_message_length": -1,
        // Notice a dead peer under an idle watch; etcd allows pings every 5 s.
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": 5_000,
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 1_000,
      },
    };
    const credentials = readTls(options.tls, this.endpoints);
    if (credentials) clientOptions.credentials = credentials;
    if (options.username !== undefined || options.password !== undefined) {
      if (!options.username || options.password === undefined) {
        throw new TwillError("Invalid", "etcd username and password must be given together");
      }
      clientOptions.auth = { username: options.username, password: options.password };
    }
    this.#client = new Etcd3(clientOptions);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.#call("read", false, (deadline) =>
      this.#client.kv.range({ key: Buffer.from(key) }, { deadline }),
    );
    const kv = res.kvs[0];
    return kv && toEntry(kv);
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const range = Range.prefix(prefix);
    const res = await this.#call("list", false, (deadline) =>
      this.#client.kv.range({ key: range.start, range_end: range.end }, { deadline }),
    );
    return { entries: res.kvs.map(toEntry), revision: Number(res.header.revision) };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const success = request.success;
    const failure = request.failure ?? [];
    const writes = [...success, ...failure].some((op) => op.type !== "get");
    const res = await this.#call(writes ? "write" : "read", writes, (deadline) =>
      this.#client.kv.txn(
        {
          compare: request.compare.map(toCompare),
          success: success.map(toRequestOp),
          failure: failure.map(toRequestOp),
        },
        { deadline },
      ),
    );
    const ran = res.succeeded ? success : failure;
    const gets: (KvEntry | undefined)[] = [];
    const deleted: (KvEntry | undefined)[] = [];
    ran.forEach((op, i) => {
      const response = res.responses[i];
      if (op.type === "get") {
        const kv = response?.response_range?.kvs[0];
        gets.push(kv && toEntry(kv));
      } else if (op.type === "delete") {
        const kv = response?.response_delete_range?.prev_kvs[0];
        deleted.push(kv && toEntry(kv));
      }
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision), gets, deleted };
  }

  watch(prefix: string, options: WatchOptions): AsyncIterable<WatchEvent> {
    return { [Symbol.asyncIterator]: () => this.#watch(prefix, options) };
  }

  async compact(revision: number): Promise<void> {
    try {
      await this.#call("compaction", false, (deadline) =>
        this.#client.kv.compact({ revision, physical: true }, { deadline }),
      );
    } catch (err) {
      const cause = err instanceof TwillError ? err.cause : err;
      const message = cause instanceof Error ? cause.message : "";
      // Like the memory backend: compacting to an already compacted revision is harmless.
      if (message.includes("required revision has been compacted")) return;
      if (message.includes("future revision")) {
        throw new TwillError(
          "Invalid",
          `cannot compact to revision ${revision}: it is ahead of the current revision`,
          { cause },
        );
      }
      throw err;
    }
  }

  async revision(): Promise<number> {
    const res = await this.#call("read", false, (deadline) =>
      this.#client.kv.range({ key: Buffer.from([0]), count_only: true }, { deadline }),
    );
    return Number(res.header.revision);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    this.#client.close();
  }

  /**
   * Run one request with the deadline and retry policy described at the top.
   * `write` requests are retried only when no connection was established.
   */
  async #call<T>(what: string, write: boolean, run: (deadline: Date) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#timeoutMs;
    const maxAttempts = Math.max(3, 2 * this.endpoints.length);
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw this.#closedError();
      try {
        return await withBackstop(run(new Date(deadline)), deadline + 500);
      } catch (err) {
        if (this.#closed || err instanceof ClientClosedError) throw this.#closedError();
        // Straight on to another endpoint when this one refused; back off otherwise.
        const delay =
          neverConnected(err) && !(err instanceof EndpointSkipped)
            ? 0
            : Math.min(50 * 2 ** (attempt - 1), 500);
        const retry =
          attempt < maxAttempts &&
          Date.now() + delay < deadline &&
          isConnectionError(err) &&
          (!write || neverConnected(err));
        if (!retry) throw this.#translate(err, what, write);
        await sleep(delay);
      }
    }
  }

  #closedError(): TwillError {
    return new TwillError("Unavailable", `the etcd client for ${this.#where()} was closed`);
  }

  #where(): string {
    return this.endpoints.join(", ");
  }

  /** Map an etcd3/gRPC error to a TwillError that names the endpoints. */
  #translate(err: unknown, what: string, write: boolean): TwillError {
    if (err instanceof TwillError) return err;
    const reason = reasonOf(err, this.#timeoutMs);
    if (isAccessError(err)) {
      return new TwillError("Unavailable", `etcd at ${this.#where()} refused access: ${reason}`, {
        cause: err,
      });
    }
    if (err instanceof GRPCInvalidArgumentError) {
      return new TwillError("Invalid", `etcd at ${this.#where()} rejected the ${what}: ${reason}`, {
        cause: err,
      });
    }
    if (err instanceof GRPCOutOfRangeError) {
      return new TwillError("Invalid", `etcd at ${this.#where()} rejected the ${what}: ${reason}`, {
        cause: err,
      });
    }
    if (isConnectionError(err)) {
      const unknown =
        write && !neverConnected(err)
          ? " (the write may still be applied: read again before retrying)"
          : "";
      return new TwillError(
        "Unavailable",
        `cannot reach etcd at ${this.#where()}: ${reason}${unknown}`,
        {
          cause: err,
        },
      );
    }
    return new TwillError("Internal", `etcd ${what} at ${this.#where()} failed: ${reason}`, {
      cause: err,
    });
  }

  async *#watch(prefix: string, options: WatchOptions): AsyncGenerator<WatchEvent> {
    checkFromRevision(options.fromRevision);
    const range = Range.prefix(prefix);
    yield* watchResume({
      prefix,
      fromRevision: options.fromRevision,
      signal: options.signal,
      open: (startRevision, report) => this.#openWatch(range, startRevision, report),
      timeoutMs: this.#timeoutMs,
      where: this.#where(),
      closed: this.#closing.signal,
      closedError: () => this.#closedError(),
      giveUp: (error) => {
        if (error instanceof ClientClosedError) return this.#closedError();
        return isAccessError(error) ? this.#translate(error, "watch", false) : undefined;
      },
      reason: (error) => reasonOf(error, this.#timeoutMs),
    });
  }

  /** Opens one raw watch stream (see the top for why not etcd3's Watcher). */
  async #openWatch(
    range: Range,
    startRevision: number,
    report: (report: StreamReport) => void,
  ): Promise<() => void> {
    const stream = await this.#client.watchClient.watch();
    stream.on("data", (response: IWatchResponse) =>
      report({ kind: "response", response: toWatchResponse(response) }),
    );
    stream.on("error", (error: unknown) => report({ kind: "failed", error }));
    stream.on("end", () => report({ kind: "failed", error: new Error("the watch stream ended") }));
    stream.write({
      create_request: {
        key: range.start,
        range_end: range.end,
        start_revision: startRevision,
        prev_kv: true,
      },
    });
    return () => stream.cancel();
  }
}

function readTls(
  tls: EtcdBackendOptions["tls"],
  endpoints: readonly string[],
): IOptions["credentials"] | undefined {
  if (!tls || (tls.ca === undefined && tls.cert === undefined && tls.key === undefined)) {
    return undefined;
  }
  const plain = endpoints.find((e) => !e.startsWith("https:"));
  if (plain !== undefined) {
    throw new TwillError(
      "Invalid",
      `etcd TLS files are given but endpoint "${plain}" is not https://`,
    );
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new TwillError("Invalid", "an etcd client certificate and key must be given together");
  }
  const read = (what: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new TwillError("Invalid", `cannot read etcd ${what} file "${path}": ${reason}`, {
        cause: err,
      });
    }
  };
  const ca = read("CA certificate", tls.ca);
  const cert = read("client certificate", tls.cert);
  const key = read("client key", tls.key);
  // gRPC uses the system roots when the CA is null; etcd3's type insists on a Buffer.
  const credentials = { rootCertificate: (ca ?? null) as Buffer } as NonNullable<
    IOptions["credentials"]
  >;
  if (key) credentials.privateKey = key;
  if (cert) credentials.certChain = cert;
  return credentials;
}

function toEntry(kv: IKeyValue): KvEntry {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
  };
}

function toWatchResponse(res: IWatchResponse): WatchResponse {
  return {
    created: res.created,
    canceled: res.canceled,
    cancelReason: res.cancel_reason,
    compactRevision: Number(res.compact_revision),
    events: res.events.map(toWatchEvent),
  };
}

function toWatchEvent(ev: IWatchResponse["events"][number]): ChangeEvent {
  const prev = ev.prev_kv ? toEntry(ev.prev_kv) : undefined;
  if (ev.type === "Delete") {
    const base = {
      type: "delete" as const,
      key: ev.kv.key.toString(),
      modRevision: Number(ev.kv.mod_revision),
    };
    return prev ? { ...base, prev } : base;
  }
  const entry = toEntry(ev.kv);
  return prev ? { type: "put", entry, prev } : { type: "put", entry };
}

function toCompare(c: Compare): ICompare {
  const key = Buffer.from(c.key);
  switch (c.target) {
    case "modRevision":
      return { key, target: "Mod", result: "Equal", mod_revision: c.equals };
    case "createRevision":
      return { key, target: "Create", result: "Equal", create_revision: c.equals };
    case "value":
      return { key, target: "Value", result: "Equal", value: Buffer.from(c.equals) };
  }
}

function toRequestOp(op: Op): IRequestOp {
  const key = Buffer.from(op.key);
  switch (op.type) {
    case "get":
      return { request_range: { key } };
    case "put":
      return { request_put: { key, value: Buffer.from(op.value) } };
    case "delete":
      return { request_delete_range: { key, prev_kv: true } };
  }
}

/** etcd refused our credentials (or their absence). */
function isAccessError(err: unknown): boolean {
  return (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdInvalidAuthTokenError ||
    err instanceof EtcdUserNotFoundError ||
    err instanceof GRPCUnauthenticatedError ||
    (err instanceof Error &&
      /etcdserver: (user name is empty|permission denied|authentication failed|invalid auth token|user name not found)/.test(
        err.message,
      ))
  );
}

/**
 * Failures to get an answer from a working etcd: no connection, no answer in
 * time, a broken stream, no leader. As opposed to etcd answering "no".
 */
function isConnectionError(err: unknown): boolean {
  if (err instanceof EndpointSkipped) return true;
  if (!(err instanceof Error) || isAccessError(err)) return false;
  if (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCInternalError ||
    err instanceof GRPCProtocolError ||
    err instanceof EtcdWatchStreamEnded ||
    // An HTTP/2 server that is not etcd (a proxy answering 404, say).
    err instanceof GRPCNotImplementedError ||
    err.constructor === GRPCGenericError
  ) {
    return true;
  }
  return /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|No connection established|Received HTTP status code|deadline|backstop|no leader|leader changed|request timed out/i.test(
    err.message,
  );
}

/** True when the request cannot have reached etcd (no connection was made). */
function neverConnected(err: unknown): boolean {
  if (err instanceof EndpointSkipped) return true;
  return (
    err instanceof Error &&
    /No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/.test(
      err.message,
    )
  );
}

/** A short reason for a message: the socket error if there is one, not gRPC's wrapping. */
export function reasonOf(err: unknown, timeoutMs: number): string {
  if (err instanceof EndpointSkipped) return reasonOf(err.last, timeoutMs);
  const message = err instanceof Error ? err.message : String(err);
  const last = /Last error: (?:Error: )?(.*?)(?:\.?\s*Resolution note:.*)?$/s.exec(message);
  // Drop the timestamp gRPC appends to TLS errors: "... (2024-05-01T12:00:00.000Z)".
  if (last?.[1]) return last[1].replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)\s*$/, "").trim();
  if (/DEADLINE_EXCEEDED|deadline exceeded|backstop/i.test(message)) {
    return `no answer within ${timeoutMs} ms`;
  }
  return message.replace(/^\d+ [A-Z_]+: /, "").trim() || "unknown error";
}

/** Reject with a backstop error if `promise` has not settled by `at` (epoch ms). */
async function withBackstop<T>(promise: Promise<T>, at: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const backstop = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("deadline backstop: the request did not settle in time")),
      Math.max(0, at - Date.now()),
    );
  });
  try {
    return await Promise.race([promise, backstop]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
