// Resources (Calico's projectcalico.org/v3 kinds and the Kubernetes
// NetworkPolicy) stored one key per object over any Backend:
//
//   <prefix>/resources/<plural>/<name>               cluster-scoped kinds
//   <prefix>/resources/<plural>/<namespace>/<name>   namespaced kinds
//
// Values are the resource as JSON, without `metadata.resourceVersion`: that
// is the key's etcd mod revision, filled in on every read. `uid` and
// `creationTimestamp` are set once, on create, and kept by every update.
//
// Every write compares revisions (create: key absent; update/delete: the
// caller's resourceVersion, or the revision just read); nothing is
// read-modify-written blind. The store does not validate specs (the CLI and
// API layers do that first); it only refuses what would break the key layout:
// an unknown kind, an empty name, or a "/" in a name or namespace.
//
// Namespaced kinds default their namespace to "default", as calicoctl does.
// A namespace given on a cluster-scoped kind is dropped.

import { randomUUID } from "node:crypto";
import { KINDS, kindOf } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { TwillError } from "../util/errors.js";
import type { Backend, KvEntry, WatchEvent } from "./backend.js";

export const DEFAULT_PREFIX = "/twill/v1";
export const DEFAULT_NAMESPACE = "default";
/** How many times apply and update retry when another writer got in between. */
export const MAX_WRITE_ATTEMPTS = 5;

export interface ResourceStoreOptions {
  /** Key prefix, without a trailing slash (default "/twill/v1"). */
  prefix?: string;
  /** Clock for creationTimestamp. */
  now?: () => Date;
  /** Source of metadata.uid (default crypto.randomUUID). */
  newUid?: () => string;
}

export type ResourceEvent =
  | { type: "put"; resource: Resource; prev?: Resource }
  | {
      type: "delete";
      kind: KindInfo;
      name: string;
      namespace?: string;
      revision: number;
      prev?: Resource;
    }
  /** The watch's start revision was compacted: list again, then watch from the list's revision. */
  | { type: "compacted"; compactRevision: number };

export interface ApplyResult {
  resource: Resource;
  created: boolean;
  /** True when nothing was written because spec, labels and annotations were already equal. */
  unchanged: boolean;
}

export class ResourceStore {
  readonly backend: Backend;
  readonly prefix: string;
  #now: () => Date;
  #newUid: () => string;

  constructor(backend: Backend, options: ResourceStoreOptions = {}) {
    this.backend = backend;
    this.prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, "");
    this.#now = options.now ?? (() => new Date());
    this.#newUid = options.newUid ?? (() => randomUUID());
  }

  /** The datastore key of one resource (IPAM builds multi-key transactions with it). */
  key(kind: KindInfo, name: string, namespace?: string): string {
    checkSegment("metadata.name", name);
    if (!kind.namespaced) return `${this.kindPrefix(kind)}${name}`;
    const ns = namespace ?? DEFAULT_NAMESPACE;
    checkSegment("metadata.namespace", ns);
    return `${this.kindPrefix(kind)}${ns}/${name}`;
  }

  async get(kind: KindInfo, name: string, opts: { namespace?: string } = {}): Promise<Resource> {
    const key = this.key(kind, name, opts.namespace);
    const entry = await this.backend.get(key);
    if (!entry) throw notFound(kind, name, namespaceOf(kind, opts.namespace));
    return decodeResource(entry);
  }

  /** Every resource of a kind, in one namespace or (namespace omitted) all of them. */
  async list(
    kind: KindInfo,
    opts: { namespace?: string } = {},
  ): Promise<{ items: Resource[]; revision: number }> {
    let prefix = this.kindPrefix(kind);
    if (kind.namespaced && opts.namespace !== undefined) {
      checkSegment("metadata.namespace", opts.namespace);
      prefix += `${opts.namespace}/`;
    }
    const { entries, revision } = await this.backend.list(prefix);
    return { items: entries.map(decodeResource), revision };
  }

  /**
   * Every resource of the given kinds (default: every kind), read with one
   * backend list so that all of them are at one revision: the consistent
   * snapshot a syncer starts watching from. Sorted by key; keys under the
   * resources prefix that are not laid out as ours are skipped, as watch does.
   */
  async listAll(
    opts: { kinds?: readonly KindInfo[] } = {},
  ): Promise<{ items: Resource[]; revision: number }> {
    const only = opts.kinds?.length === 1 ? opts.kinds[0] : undefined;
    const prefix = only ? this.kindPrefix(only) : `${this.prefix}/resources/`;
    const wanted = opts.kinds && new Set(opts.kinds.map((k) => k.id));
    const { entries, revision } = await this.backend.list(prefix);
    const items: Resource[] = [];
    for (const entry of entries) {
      const parsed = this.#parseKey(entry.key);
      if (!parsed || (wanted && !wanted.has(parsed.kind.id))) continue;
      items.push(decodeResource(entry));
    }
    return { items, revision };
  }

  /** Store a new resource; TwillError "AlreadyExists" when one of that name is there. */
  async create(res: Resource): Promise<Resource> {
    const { kind, name, namespace } = this.#identify(res);
    const key = this.key(kind, name, namespace);
    const stored = this.#prepare(res, kind, namespace, {
      uid: this.#newUid(),
      creationTimestamp: rfc3339(this.#now()),
    });
    const value = JSON.stringify(stored);
    const result = await this.backend.txn({
      compare: [{ key, target: "createRevision", equals: 0 }],
      success: [{ type: "put", key, value }],
    });
    if (!result.succeeded) throw alreadyExists(kind, name, namespace);
    return withVersion(stored, result.revision);
  }

  /**
   * Replace a stored resource. With `metadata.resourceVersion` the write
   * happens only if the stored revision still matches ("Conflict"
   * otherwise); without it, it replaces whatever is there. "NotFound" when
   * absent. Keeps the stored uid and creationTimestamp.
   */
  async update(res: Resource): Promise<Resource> {
    const { kind, name, namespace } = this.#identify(res);
    const key = this.key(kind, name, namespace);
    const expected = parseResourceVersion(res.metadata.resourceVersion);
    for (let attempt = 1; ; attempt++) {
      const current = await this.backend.get(key);
      if (!current) throw notFound(kind, name, namespace);
      if (expected !== undefined && current.modRevision !== expected) {
        throw conflict(kind, name, namespace, expected, current.modRevision);
      }
      const stored = this.#prepare(res, kind, namespace, kept(decodeResource(current)));
      const result = await this.backend.txn({
        compare: [{ key, target: "modRevision", equals: current.modRevision }],
        success: [{ type: "put", key, value: JSON.stringify(stored) }],
        failure: [{ type: "get", key }],
      });
      if (result.succeeded) return withVersion(stored, result.revision);
      const now = result.gets[0];
      if (!now) throw notFound(kind, name, namespace);
      if (expected !== undefined) throw conflict(kind, name, namespace, expected, now.modRevision);
      if (attempt >= MAX_WRITE_ATTEMPTS) throw raced(kind, name, namespace, attempt);
    }
  }

  /**
   * Create or update, as `twill apply` does. Any resourceVersion in `res` is
   * ignored: apply means "make it so", like calicoctl apply. Nothing is
   * written when spec, labels, annotations (and any other top-level field)
   * already match. Retries a bounded number of times when another writer
   * gets in between.
   */
  async apply(res: Resource): Promise<ApplyResult> {
    const { kind, name, namespace } = this.#identify(res);
    const key = this.key(kind, name, namespace);
    for (let attempt = 1; ; attempt++) {
      const current = await this.backend.get(key);
      if (!current) {
        const stored = this.#prepare(res, kind, namespace, {
          uid: this.#newUid(),
          creationTimestamp: rfc3339(this.#now()),
        });
        const result = await this.backend.txn({
          compare: [{ key, target: "createRevision", equals: 0 }],
          success: [{ type: "put", key, value: JSON.stringify(stored) }],
        });
        if (result.succeeded) {
          return {
            resource: withVersion(stored, result.revision),
            created: true,
            unchanged: false,
          };
        }
      } else {
        const existing = decodeResource(current);
        const stored = this.#prepare(res, kind, namespace, kept(existing));
        if (sameContent(stored, existing)) {
          return { resource: existing, created: false, unchanged: true };
        }
        const result = await this.backend.txn({
          compare: [{ key, target: "modRevision", equals: current.modRevision }],
          success: [{ type: "put", key, value: JSON.stringify(stored) }],
        });
        if (result.succeeded) {
          return {
            resource: withVersion(stored, result.revision),
            created: false,
            unchanged: false,
          };
        }
      }
      if (attempt >= MAX_WRITE_ATTEMPTS) throw raced(kind, name, namespace, attempt);
    }
  }

  /**
   * Delete and return what was deleted (its resourceVersion is that of its
   * last write). With `resourceVersion`, only if it still matches.
   */
  async delete(
    kind: KindInfo,
    name: string,
    opts: { namespace?: string; resourceVersion?: string } = {},
  ): Promise<Resource> {
    const namespace = namespaceOf(kind, opts.namespace);
    const key = this.key(kind, name, namespace);
    const expected = parseResourceVersion(opts.resourceVersion);
    if (expected === undefined) {
      const result = await this.backend.txn({ compare: [], success: [{ type: "delete", key }] });
      const gone = result.deleted[0];
      if (!gone) throw notFound(kind, name, namespace);
      return decodeResource(gone);
    }
    const result = await this.backend.txn({
      compare: [{ key, target: "modRevision", equals: expected }],
      success: [{ type: "delete", key }],
      failure: [{ type: "get", key }],
    });
    if (result.succeeded) {
      const gone = result.deleted[0];
      if (gone) return decodeResource(gone);
      // modRevision 0 matched an absent key.
      throw notFound(kind, name, namespace);
    }
    const current = result.gets[0];
    if (!current) throw notFound(kind, name, namespace);
    throw conflict(kind, name, namespace, expected, current.modRevision);
  }

  /**
   * Changes after `fromRevision`, of one kind or (kind omitted) of every
   * kind. Ends on abort or after a `compacted` event; throws "Unavailable"
   * when the backend loses its connection for good.
   */
  watch(opts: {
    kind?: KindInfo;
    fromRevision: number;
    signal?: AbortSignal;
  }): AsyncIterable<ResourceEvent> {
    const prefix = opts.kind ? this.kindPrefix(opts.kind) : `${this.prefix}/resources/`;
    const events = this.backend.watch(
      prefix,
      opts.signal
        ? { fromRevision: opts.fromRevision, signal: opts.signal }
        : { fromRevision: opts.fromRevision },
    );
    return this.#decodeEvents(events);
  }

  async *#decodeEvents(events: AsyncIterable<WatchEvent>): AsyncGenerator<ResourceEvent> {
    for await (const ev of events) {
      switch (ev.type) {
        case "compacted":
          yield ev;
          return;
        case "put": {
          if (!this.#parseKey(ev.entry.key)) continue;
          const resource = decodeResource(ev.entry);
          yield ev.prev
            ? { type: "put", resource, prev: decodeResource(ev.prev) }
            : { type: "put", resource };
          break;
        }
        case "delete": {
          const parsed = this.#parseKey(ev.key);
          if (!parsed) continue;
          const out: ResourceEvent = {
            type: "delete",
            kind: parsed.kind,
            name: parsed.name,
            revision: ev.modRevision,
          };
          if (parsed.namespace !== undefined) out.namespace = parsed.namespace;
          if (ev.prev) out.prev = decodeResource(ev.prev);
          yield out;
          break;
        }
      }
    }
  }

  /** Kind, name and namespace of a key under this store, or undefined for foreign keys. */
  #parseKey(key: string): { kind: KindInfo; name: string; namespace?: string } | undefined {
    const base = `${this.prefix}/resources/`;
    if (!key.startsWith(base)) return undefined;
    const parts = key.slice(base.length).split("/");
    const kind = KINDS.find((k) => k.plural === parts[0]);
    if (!kind) return undefined;
    if (kind.namespaced && parts.length === 3 && parts[1] && parts[2]) {
      return { kind, namespace: parts[1], name: parts[2] };
    }
    if (!kind.namespaced && parts.length === 2 && parts[1]) return { kind, name: parts[1] };
    return undefined;
  }

  /** The key prefix of every resource of `kind` (all namespaces). */
  kindPrefix(kind: KindInfo): string {
    return `${this.prefix}/resources/${kind.plural}/`;
  }

  #identify(res: Resource): { kind: KindInfo; name: string; namespace: string | undefined } {
    const kind = kindOf(res.apiVersion, res.kind);
    if (!kind) {
      throw new TwillError(
        "Invalid",
        `unknown kind "${String(res.kind)}" in apiVersion "${String(res.apiVersion)}"`,
      );
    }
    const name: unknown = res.metadata?.name;
    if (typeof name !== "string") {
      throw new TwillError("Invalid", `metadata.name: ${kindName(kind)} has no name`);
    }
    checkSegment("metadata.name", name);
    return { kind, name, namespace: namespaceOf(kind, res.metadata.namespace) };
  }

  /** The object as stored: a deep copy with server-set metadata in place. */
  #prepare(
    res: Resource,
    kind: KindInfo,
    namespace: string | undefined,
    server: { uid?: string; creationTimestamp?: string },
  ): Resource {
    const copy = structuredClone(res);
    const metadata = { ...copy.metadata };
    delete metadata.resourceVersion;
    delete metadata.uid;
    delete metadata.creationTimestamp;
    if (kind.namespaced && namespace !== undefined) metadata.namespace = namespace;
    else delete metadata.namespace;
    if (server.uid !== undefined) metadata.uid = server.uid;
    if (server.creationTimestamp !== undefined) {
      metadata.creationTimestamp = server.creationTimestamp;
    }
    return { ...copy, metadata };
  }
}

/** A stored entry as the resource it holds (resourceVersion from its modRevision). */
export function decodeResource(entry: KvEntry): Resource {
  let value: unknown;
  try {
    value = JSON.parse(entry.value);
  } catch (err) {
    throw new TwillError("Internal", `stored value of "${entry.key}" is not JSON`, { cause: err });
  }
  if (
    typeof value !== "object" ||
    value === null ||
    typeof (value as { metadata?: unknown }).metadata !== "object" ||
    (value as { metadata?: unknown }).metadata === null
  ) {
    throw new TwillError("Internal", `stored value of "${entry.key}" is not a resource`);
  }
  return withVersion(value as Resource, entry.modRevision);
}

function withVersion(res: Resource, revision: number): Resource {
  return { ...res, metadata: { ...res.metadata, resourceVersion: String(revision) } };
}

function kept(existing: Resource): { uid?: string; creationTimestamp?: string } {
  const out: { uid?: string; creationTimestamp?: string } = {};
  if (existing.metadata.uid !== undefined) out.uid = existing.metadata.uid;
  if (existing.metadata.creationTimestamp !== undefined) {
    out.creationTimestamp = existing.metadata.creationTimestamp;
  }
  return out;
}

/** Equal apart from resourceVersion, treating absent and empty labels/annotations alike. */
function sameContent(a: Resource, b: Resource): boolean {
  return canonical(comparable(a)) === canonical(comparable(b));
}

function comparable(res: Resource): unknown {
  const metadata: Record<string, unknown> = { ...res.metadata };
  delete metadata.resourceVersion;
  for (const field of ["labels", "annotations"]) {
    const v = metadata[field];
    if (v && typeof v === "object" && Object.keys(v).length === 0) delete metadata[field];
  }
  return { ...res, metadata };
}

/** JSON with object keys sorted, so key order does not count as a change. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
      return sorted;
    }
    return v;
  });
}

function namespaceOf(kind: KindInfo, namespace: string | undefined): string | undefined {
  if (!kind.namespaced) return undefined;
  return namespace === undefined || namespace === "" ? DEFAULT_NAMESPACE : namespace;
}

function checkSegment(field: string, value: string): void {
  if (value === "" || value.includes("/")) {
    throw new TwillError(
      "Invalid",
      `${field}: "${value}" cannot be stored: it must be non-empty and contain no "/"`,
    );
  }
}

function parseResourceVersion(rv: string | undefined): number | undefined {
  if (rv === undefined || rv === "") return undefined;
  const n = Number(rv);
  if (!/^\d+$/.test(rv) || !Number.isSafeInteger(n)) {
    throw new TwillError("Invalid", `metadata.resourceVersion: "${rv}" is not a revision number`);
  }
  return n;
}

/** RFC 3339 in UTC with whole seconds, as Kubernetes and calicoctl print it. */
function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function kindName(kind: KindInfo): string {
  return kind.id.toLowerCase();
}

function subject(kind: KindInfo, name: string, namespace: string | undefined): string {
  return `${kindName(kind)} "${name}"${namespace !== undefined ? ` in namespace "${namespace}"` : ""}`;
}

function notFound(kind: KindInfo, name: string, namespace: string | undefined): TwillError {
  return new TwillError("NotFound", `${subject(kind, name, namespace)} not found`);
}

function alreadyExists(kind: KindInfo, name: string, namespace: string | undefined): TwillError {
  return new TwillError("AlreadyExists", `${subject(kind, name, namespace)} already exists`);
}

function conflict(
  kind: KindInfo,
  name: string,
  namespace: string | undefined,
  expected: number,
  actual: number,
): TwillError {
  return new TwillError(
    "Conflict",
    `${subject(kind, name, namespace)} has changed: resourceVersion "${expected}" is not the current "${actual}"; read it again and retry`,
  );
}

function raced(
  kind: KindInfo,
  name: string,
  namespace: string | undefined,
  attempts: number,
): TwillError {
  return new TwillError(
    "Conflict",
    `${subject(kind, name, namespace)} kept changing under concurrent writers: gave up after ${attempts} attempts`,
  );
}
