// A Backend over etcd's JSON gateway (`POST /v3/kv/...`, `/v3/watch`) with
// nothing but node:http(s): the CNI plugin is a new process for every call,
// and loading the gRPC client (etcd3, grpc-js, protobufjs) costs ~0.25 s of
// CPU before the first request. This client costs a few milliseconds. It has
// the same semantics as the gRPC backend (the one contract suite in
// src/datastore/backend-contract.ts runs against both); only its transport
// differs:
//
//   request ──► endpoint 1 ──(no connection)──► endpoint 2 ... within timeoutMs
//   watch   ──► one streamed POST per watch, newline-separated JSON messages;
//               a dropped stream is reopened from the next revision
//               (src/datastore/watch-resume.ts, shared with the gRPC backend).
//
// Keys and values travel base64-encoded; revisions as decimal strings; fields
// equal to zero are left out by the gateway. A request that may have reached
// etcd is not sent again after a failure (a write could apply twice): it fails
// with "Unavailable", and the caller (IPAM's compare-and-swap loop) reads again.
//
// Start-up cost matters here (a CNI call is a new process): node:https (and
// with it TLS) is loaded only for https:// endpoints, and requests name no
// TLS server name over plain HTTP, which spares node:http's agent compiling
// its IPv6 address pattern (~10 ms) to work one out.
import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import http from "node:http";
import type https from "node:https";
import type {
  Backend,
  Compare,
  KvEntry,
  Op,
  ReadManyRequest,
  ReadManyResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from "../datastore/backend.js";
import type { ChangeEvent, StreamReport } from "../datastore/watch-resume.js";
import { watchResume } from "../datastore/watch-resume.js";
import { TwillError } from "../util/errors.js";

export interface EtcdHttpOptions {
  /**
   * Client URLs, all `http://host:port` or all `https://host:port`, or
   * `unix:///path` (a socket, reachable from any network namespace: the
   * lab's and the tests' hosts use one); several = one cluster.
   */
  endpoints: string[];
  /** PEM file paths: the CA that signed the servers, a client certificate and its key. */
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: string;
  /** Deadline per request, connecting included, in milliseconds (default 3000). */
  timeoutMs?: number;
}

export const DEFAULT_HTTP_TIMEOUT_MS = 3000;

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
}

interface RawHeader {
  revision?: string;
}

interface GatewayError {
  code?: number;
  message?: string;
  error?: string;
}

/** A failure to talk to etcd at all, as opposed to etcd answering with an error. */
class TransportError extends Error {
  /** True when the request cannot have reached etcd (no connection was made). */
  readonly beforeSend: boolean;
  constructor(message: string, beforeSend: boolean, cause?: unknown) {
    super(message, { cause });
    this.beforeSend = beforeSend;
  }
}

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
const unb64 = (text: string | undefined): string =>
  text === undefined ? "" : Buffer.from(text, "base64").toString("utf8");
const num = (text: string | undefined): number => (text === undefined ? 0 : Number(text));

/** The smallest key greater than every key starting with `prefix` (etcd's range_end). */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, "utf8");
  for (let i = bytes.length - 1; i >= 0; i--) {
    if ((bytes[i] as number) < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = (end[i] as number) + 1;
      return end.toString("base64");
    }
  }
  return Buffer.from([0]).toString("base64");
}

function toEntry(kv: RawKv): KvEntry {
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    createRevision: num(kv.create_revision),
    modRevision: num(kv.mod_revision),
    version: num(kv.version),
  };
}

function toCompare(c: Compare): Record<string, unknown> {
  const key = b64(c.key);
  switch (c.target) {
    case "modRevision":
      return { key, target: "MOD", result: "EQUAL", mod_revision: String(c.equals) };
    case "createRevision":
      return { key, target: "CREATE", result: "EQUAL", create_revision: String(c.equals) };
    case "value":
      return { key, target: "VALUE", result: "EQUAL", value: b64(c.equals) };
  }
}

function toRequestOp(op: Op): Record<string, unknown> {
  const key = b64(op.key);
  switch (op.type) {
    case "get":
      return { request_range: { key } };
    case "put":
      return { request_put: { key, value: b64(op.value) } };
    case "delete":
      return { request_delete_range: { key, prev_kv: true } };
  }
}

function checkEndpointList(endpoints: readonly string[]): URL[] {
  if (endpoints.length === 0) {
    throw new TwillError("Invalid", "no etcd endpoints given: expected at least one URL");
  }
  const urls = endpoints.map((endpoint) => {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      url = undefined;
    }
    const ok =
      url !== undefined &&
      (url.protocol === "unix:"
        ? url.pathname !== "" && url.pathname !== "/"
        : (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "");
    if (!ok || !url) {
      throw new TwillError(
        "Invalid",
        `invalid etcd endpoint "${endpoint}": expected http://host:port, https://host:port or unix:///path/to/socket`,
      );
    }
    return url;
  });
  const secure = urls.filter((u) => u.protocol === "https:").length;
  if (secure !== 0 && secure !== urls.length) {
    throw new TwillError(
      "Invalid",
      `etcd endpoints mix http and https (${endpoints.join(", ")}): use one scheme for all`,
    );
  }
  return urls;
}

function readPem(what: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new TwillError("Invalid", `cannot read etcd ${what} file "${path}": ${reason}`, {
      cause: err,
    });
  }
}

/** The HTTP(S) module and the connection pool requests go through. */
interface Transport {
  lib: typeof http | typeof https;
  agent: http.Agent;
  /** TLS options for a connection of its own (a watch), none over plain HTTP. */
  tls: Record<string, unknown>;
}

export class EtcdHttpBackend implements Backend {
  readonly endpoints: readonly string[];
  #urls: URL[];
  #tlsFiles: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  #transport: Transport | undefined;
  #timeoutMs: number;
  #auth: { username: string; password: string } | undefined;
  #token: string | undefined;
  #closed = false;
  #closers = new Set<() => void>();
  /** Aborted by close(): ends the open watches. */
  #closing = new AbortController();
  /** The endpoint that answered last: tried first next time. */
  #preferred = 0;

  constructor(options: EtcdHttpOptions) {
    // Every open watch listens for close(): no limit to warn about.
    setMaxListeners(0, this.#closing.signal);
    this.#urls = checkEndpointList(options.endpoints);
    this.endpoints = [...options.endpoints];
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    if (!(this.#timeoutMs > 0)) {
      throw new TwillError("Invalid", `timeoutMs must be positive, got ${this.#timeoutMs}`);
    }
    const secure = this.#urls[0]?.protocol === "https:";
    const tls = options.tls ?? {};
    if (!secure && (tls.ca ?? tls.cert ?? tls.key) !== undefined) {
      throw new TwillError(
        "Invalid",
        `etcd TLS files are given but endpoint "${this.endpoints[0]}" is not https://`,
      );
    }
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new TwillError("Invalid", "an etcd client certificate and key must be given together");
    }
    if (options.username !== undefined || options.password !== undefined) {
      if (!options.username || options.password === undefined) {
        throw new TwillError("Invalid", "etcd username and password must be given together");
      }
      this.#auth = { username: options.username, password: options.password };
    }
    // Read now: a missing file is a configuration error, reported at once.
    this.#tlsFiles = {
      ...optional("ca", readPem("CA certificate", tls.ca)),
      ...optional("cert", readPem("client certificate", tls.cert)),
      ...optional("key", readPem("client key", tls.key)),
    };
    if (!secure) {
      this.#transport = { lib: http, agent: new http.Agent({ keepAlive: true }), tls: {} };
    }
  }

  /** The transport, node:https loaded on first use. */
  async #open(): Promise<Transport> {
    if (this.#transport) return this.#transport;
    const lib = (await import("node:https")).default;
    // Another call may have got here first while the module loaded.
    this.#transport ??= {
      lib,
      agent: new lib.Agent({ keepAlive: true, ...this.#tlsFiles }),
      tls: { ...this.#tlsFiles },
    };
    return this.#transport;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.#call<{ kvs?: RawKv[] }>("/v3/kv/range", { key: b64(key) }, "read");
    const kv = res.kvs?.[0];
    return kv && toEntry(kv);
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const res = await this.#call<{ kvs?: RawKv[]; header?: RawHeader }>(
      "/v3/kv/range",
      { key: b64(prefix), range_end: prefixEnd(prefix) },
      "list",
    );
    return { entries: (res.kvs ?? []).map(toEntry), revision: num(res.header?.revision) };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const success = request.success;
    const failure = request.failure ?? [];
    const writes = [...success, ...failure].some((op) => op.type !== "get");
    const res = await this.#call<{
      succeeded?: boolean;
      header?: RawHeader;
      responses?: {
        response_range?: { kvs?: RawKv[] };
        response_delete_range?: { prev_kvs?: RawKv[] };
      }[];
    }>(
      "/v3/kv/txn",
      {
        compare: request.compare.map(toCompare),
        success: success.map(toRequestOp),
        failure: failure.map(toRequestOp),
      },
      writes ? "write" : "read",
    );
    const succeeded = res.succeeded === true;
    const ran = succeeded ? success : failure;
    const gets: (KvEntry | undefined)[] = [];
    const deleted: (KvEntry | undefined)[] = [];
    ran.forEach((op, i) => {
      const response = res.responses?.[i];
      if (op.type === "get") {
        const kv = response?.response_range?.kvs?.[0];
        gets.push(kv && toEntry(kv));
      } else if (op.type === "delete") {
        const kv = response?.response_delete_range?.prev_kvs?.[0];
        deleted.push(kv && toEntry(kv));
      }
    });
    return { succeeded, revision: num(res.header?.revision), gets, deleted };
  }

  async readMany(request: ReadManyRequest): Promise<ReadManyResult> {
    const ranges = [
      ...request.keys.map((key) => ({ request_range: { key: b64(key) } })),
      ...request.prefixes.map((prefix) => ({
        request_range: { key: b64(prefix), range_end: prefixEnd(prefix) },
      })),
    ];
    const res = await this.#call<{ responses?: { response_range?: { kvs?: RawKv[] } }[] }>(
      "/v3/kv/txn",
      { compare: [], success: ranges, failure: [] },
      "read",
    );
    const kvs = (i: number): RawKv[] => res.responses?.[i]?.response_range?.kvs ?? [];
    const gets = new Map<string, KvEntry | undefined>();
    request.keys.forEach((key, i) => {
      const kv = kvs(i)[0];
      gets.set(key, kv && toEntry(kv));
    });
    const lists = new Map<string, KvEntry[]>();
    request.prefixes.forEach((prefix, i) => {
      lists.set(prefix, kvs(request.keys.length + i).map(toEntry));
    });
    return { gets, lists };
  }

  watch(prefix: string, options: WatchOptions): AsyncIterable<WatchEvent> {
    return { [Symbol.asyncIterator]: () => this.#watch(prefix, options) };
  }

  async compact(revision: number): Promise<void> {
    try {
      await this.#call(
        "/v3/kv/compaction",
        { revision: String(revision), physical: true },
        "compaction",
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : "";
      // Like the memory backend: compacting to an already compacted revision is harmless.
      if (message.includes("required revision has been compacted")) return;
      if (message.includes("future revision")) {
        throw new TwillError(
          "Invalid",
          `cannot compact to revision ${revision}: it is ahead of the current revision`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async revision(): Promise<number> {
    const res = await this.#call<{ header?: RawHeader }>(
      "/v3/kv/range",
      { key: b64("\0"), count_only: true },
      "read",
    );
    return num(res.header?.revision);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    for (const close of [...this.#closers]) close();
    this.#transport?.agent.destroy();
  }

  #where(): string {
    return this.endpoints.join(", ");
  }

  #closedError(): TwillError {
    return new TwillError("Unavailable", `the etcd client for ${this.#where()} was closed`);
  }

  /**
   * One unary request within the deadline. Endpoints are tried in turn while
   * no connection could be made; once a request may have reached etcd it is
   * not repeated.
   */
  async #call<T>(path: string, body: unknown, what: string, retriedAuth = false): Promise<T> {
    if (this.#closed) throw this.#closedError();
    const deadline = Date.now() + this.#timeoutMs;
    const text = JSON.stringify(body);
    if (this.#auth && this.#token === undefined && path !== "/v3/auth/authenticate") {
      await this.#authenticate(deadline);
    }
    const transport = await this.#open();
    let lastError: unknown;
    for (let attempt = 0; attempt < Math.max(3, 2 * this.#urls.length); attempt++) {
      if (this.#closed) throw this.#closedError();
      const index = (this.#preferred + attempt) % this.#urls.length;
      const url = this.#urls[index] as URL;
      try {
        const { status, json } = await this.#post(transport, url, path, text, deadline);
        this.#preferred = index;
        if (status === 200) return json as T;
        const error = json as GatewayError;
        const message = error.message ?? error.error ?? `HTTP status ${status}`;
        if (this.#auth && !retriedAuth && /invalid auth token/.test(message)) {
          this.#token = undefined;
          return this.#call<T>(path, body, what, true);
        }
        throw this.#answerError(message, error.code, what);
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        lastError = err;
        if (this.#closed) throw this.#closedError();
        // A read can always be sent again; a write only if it cannot have arrived.
        const retry = (err.beforeSend || what !== "write") && Date.now() < deadline;
        if (!retry) break;
        // Straight on to the next endpoint; pause only once every one was tried.
        if ((attempt + 1) % this.#urls.length === 0) await sleep(Math.min(50 * (attempt + 1), 200));
      }
    }
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    const unknown =
      what === "write" && lastError instanceof TransportError && !lastError.beforeSend
        ? " (the write may still be applied: read again before retrying)"
        : "";
    throw new TwillError(
      "Unavailable",
      `cannot reach etcd at ${this.#where()}: ${reason}${unknown}`,
      { cause: lastError },
    );
  }

  async #authenticate(deadline: number): Promise<void> {
    const auth = this.#auth as { username: string; password: string };
    const res = await this.#call<{ token?: string }>(
      "/v3/auth/authenticate",
      { name: auth.username, password: auth.password },
      "authentication",
    );
    if (!res.token) {
      throw new TwillError("Unavailable", `etcd at ${this.#where()} returned no auth token`);
    }
    if (Date.now() > deadline) {
      throw new TwillError("Unavailable", `etcd at ${this.#where()}: authentication took too long`);
    }
    this.#token = res.token;
  }

  /** Map an error etcd answered with to a TwillError (gRPC status codes). */
  #answerError(message: string, code: number | undefined, what: string): TwillError {
    const where = this.#where();
    if (
      code === 16 ||
      code === 7 ||
      /user name is empty|permission denied|authentication failed|invalid auth token|user name not found/.test(
        message,
      )
    ) {
      return new TwillError("Unavailable", `etcd at ${where} refused access: ${message}`);
    }
    if (code === 3 || code === 11 || /too large|duplicate key|too many operations/.test(message)) {
      return new TwillError("Invalid", `etcd at ${where} rejected the ${what}: ${message}`);
    }
    if (code === 14 || code === 4 || /no leader|leader changed|timed out/.test(message)) {
      return new TwillError(
        "Unavailable",
        `etcd at ${where} could not serve the ${what}: ${message}`,
      );
    }
    return new TwillError("Internal", `etcd ${what} at ${where} failed: ${message}`);
  }

  #headers(length: number): Record<string, string | number> {
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": length,
    };
    if (this.#token !== undefined) headers["authorization"] = this.#token;
    return headers;
  }

  #post(
    transport: Transport,
    url: URL,
    path: string,
    body: string,
    deadline: number,
  ): Promise<{ status: number; json: unknown }> {
    return new Promise((resolve, reject) => {
      let sent = false;
      let settled = false;
      const fail = (err: TransportError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(err);
      };
      const onClose = (): void => fail(new TransportError("the client was closed", !sent));
      const req = transport.lib.request(
        {
          ...target(url),
          method: "POST",
          path,
          agent: transport.agent,
          headers: this.#headers(Buffer.byteLength(body)),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (err) => fail(new TransportError(err.message, false, err)));
          res.on("end", () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            this.#closers.delete(onClose);
            const text = Buffer.concat(chunks).toString("utf8");
            let json: unknown;
            try {
              json = text === "" ? {} : JSON.parse(text);
            } catch {
              reject(
                new TwillError(
                  "Unavailable",
                  `etcd at ${hostOf(url)} answered ${path} with something that is not JSON (HTTP ${res.statusCode}): ${text.slice(0, 200)}`,
                ),
              );
              return;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      const timer = setTimeout(
        () => fail(new TransportError(`no answer within ${this.#timeoutMs} ms`, !sent)),
        Math.max(1, deadline - Date.now()),
      );
      this.#closers.add(onClose);
      req.on("socket", (socket) => {
        // A reused keep-alive socket is already connected.
        if (!socket.connecting) sent = true;
        else socket.once("connect", () => (sent = true));
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        // ECONNRESET on a reused socket after sending may have reached etcd.
        const before = !sent || err.code === "ECONNREFUSED";
        fail(
          new TransportError(err.code ? `${err.code} (${hostOf(url)})` : err.message, before, err),
        );
      });
      req.end(body);
    });
  }

  async *#watch(prefix: string, options: WatchOptions): AsyncGenerator<WatchEvent> {
    const { fromRevision } = options;
    if (!Number.isInteger(fromRevision) || fromRevision < 0) {
      throw new TwillError(
        "Invalid",
        `fromRevision must be a whole number >= 0, got ${fromRevision}`,
      );
    }
    yield* watchResume({
      prefix,
      fromRevision,
      signal: options.signal,
      open: async (startRevision, report) =>
        this.#openWatch(await this.#open(), prefix, startRevision, report),
      timeoutMs: this.#timeoutMs,
      where: this.#where(),
      closed: this.#closing.signal,
      closedError: () => this.#closedError(),
      // A TwillError is #watchReport's refusal of access: retrying cannot help.
      giveUp: (error) => (error instanceof TwillError ? error : undefined),
    });
  }

  /** Starts one watch stream; its messages and its end go to `report`. Returns how to stop it. */
  #openWatch(
    transport: Transport,
    prefix: string,
    startRevision: number,
    report: (report: StreamReport) => void,
  ): () => void {
    const url = this.#urls[this.#preferred] as URL;
    this.#preferred = (this.#preferred + 1) % this.#urls.length;
    const body = JSON.stringify({
      create_request: {
        key: b64(prefix),
        range_end: prefixEnd(prefix),
        start_revision: String(startRevision),
        prev_kv: true,
      },
    });
    // Watches get their own connection: a long-lived stream must not hold a
    // pooled socket that unary requests wait for.
    const req = transport.lib.request({
      ...target(url),
      method: "POST",
      path: "/v3/watch",
      headers: this.#headers(Buffer.byteLength(body)),
      agent: false,
      ...transport.tls,
    });
    let ended = false;
    const failed = (error: Error): void => {
      if (ended) return;
      ended = true;
      report({ kind: "failed", error });
    };
    req.on("error", (err: NodeJS.ErrnoException) =>
      failed(new Error(err.code ? `${err.code} (${hostOf(url)})` : err.message)),
    );
    req.on("response", (res) => {
      let buffered = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line === "") continue;
          try {
            report(this.#watchReport(JSON.parse(line) as WatchMessage));
          } catch {
            failed(new Error(`etcd sent a watch message that is not JSON: ${line.slice(0, 200)}`));
          }
        }
      });
      res.on("error", (err) => failed(err));
      res.on("end", () => {
        const rest = buffered.trim();
        if (rest !== "") {
          try {
            report(this.#watchReport(JSON.parse(rest) as WatchMessage));
          } catch {
            // A partial message at the end of a broken stream: the reopen replays it.
          }
        }
        failed(new Error(`the watch stream ended (HTTP ${res.statusCode})`));
      });
    });
    req.end(body);
    return () => req.destroy();
  }

  /** A watch message as the driver takes it; a refusal of access is a TwillError. */
  #watchReport(m: WatchMessage): StreamReport {
    if (m.error) {
      const text = m.error.message ?? m.error.error ?? "watch failed";
      if (m.error.code === 16 || m.error.code === 7 || /permission denied|auth/.test(text)) {
        const refused = `etcd at ${this.#where()} refused access: ${text}`;
        return { kind: "failed", error: new TwillError("Unavailable", refused) };
      }
      return { kind: "failed", error: new Error(text) };
    }
    const res = m.result ?? {};
    const response = {
      created: res.created === true,
      canceled: res.canceled === true,
      cancelReason: res.cancel_reason ?? "",
      compactRevision: num(res.compact_revision),
      events: (res.events ?? []).map(toWatchEvent),
    };
    return { kind: "response", response };
  }
}

interface WatchMessage {
  result?: {
    created?: boolean;
    canceled?: boolean;
    cancel_reason?: string;
    compact_revision?: string;
    events?: { type?: string; kv?: RawKv; prev_kv?: RawKv }[];
  };
  error?: GatewayError;
}

function toWatchEvent(ev: { type?: string; kv?: RawKv; prev_kv?: RawKv }): ChangeEvent {
  const prev = ev.prev_kv ? toEntry(ev.prev_kv) : undefined;
  if (ev.type === "DELETE") {
    const base = {
      type: "delete" as const,
      key: unb64(ev.kv?.key),
      modRevision: num(ev.kv?.mod_revision),
    };
    return prev ? { ...base, prev } : base;
  }
  const entry = toEntry(ev.kv ?? {});
  return prev ? { type: "put", entry, prev } : { type: "put", entry };
}

function hostOf(url: URL): string {
  return url.protocol === "unix:" ? url.pathname : url.host;
}

/**
 * Where a request goes: host and port, or a unix socket (reachable from any
 * network namespace). Over plain HTTP an empty TLS server name, so that the
 * agent does not work one out (see the header); https works it out as usual.
 */
function target(url: URL): https.RequestOptions {
  if (url.protocol === "unix:") return { socketPath: url.pathname, servername: "" };
  const where = { protocol: url.protocol, hostname: url.hostname, port: url.port };
  return url.protocol === "https:" ? where : { ...where, servername: "" };
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
