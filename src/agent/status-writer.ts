// Writes each local workload endpoint's programming status to the datastore
// (the contract is datastore/endpoint-status.ts: the CNI plugin waits on it).
//
// The agent hands over the whole desired picture after every apply
// (`setDesired`); flush() writes only what differs from what this writer
// last wrote: puts for new or changed statuses, deletes for endpoints gone.
// The first flush reads the node's keys back, so a restarted agent rewrites
// nothing that is already right and removes what its predecessor left for
// endpoints that no longer exist. A failed flush leaves the difference for
// the next one; the caller retries.
import type { Backend, Op } from "../datastore/backend.js";
import {
  endpointStatusKey,
  endpointStatusPrefix,
  formatEndpointStatus,
} from "../datastore/endpoint-status.js";
import type { EndpointStatus } from "../datastore/endpoint-status.js";

/** etcd refuses transactions of more than 128 ops. */
const MAX_OPS_PER_TXN = 100;

export interface StatusFlushResult {
  put: number;
  deleted: number;
}

export class EndpointStatusWriter {
  readonly #backend: Backend;
  readonly #prefix: string;
  readonly #node: string;
  /** key → stored value, as far as we know. */
  #written: Map<string, string> | undefined;
  /** key → value wanted. */
  #desired = new Map<string, string>();
  #dirty = false;

  constructor(backend: Backend, options: { prefix: string; node: string }) {
    this.#backend = backend;
    this.#prefix = options.prefix;
    this.#node = options.node;
  }

  /** Every local workload endpoint's status, by namespace and name. */
  setDesired(
    statuses: ReadonlyMap<string, { namespace: string; name: string; status: EndpointStatus }>,
  ): void {
    const next = new Map<string, string>();
    for (const s of statuses.values()) {
      const key = endpointStatusKey(this.#prefix, {
        node: this.#node,
        namespace: s.namespace,
        name: s.name,
      });
      next.set(key, formatEndpointStatus(s.status));
    }
    this.#desired = next;
    this.#dirty = true;
  }

  get dirty(): boolean {
    return this.#dirty;
  }

  async flush(): Promise<StatusFlushResult> {
    if (!this.#dirty) return { put: 0, deleted: 0 };
    if (this.#written === undefined) {
      const { entries } = await this.#backend.list(endpointStatusPrefix(this.#prefix, this.#node));
      this.#written = new Map(entries.map((e) => [e.key, e.value]));
    }
    const written = this.#written;
    const desired = this.#desired;
    const ops: Op[] = [];
    for (const [key, value] of desired) {
      if (written.get(key) !== value) ops.push({ type: "put", key, value });
    }
    for (const key of written.keys()) {
      if (!desired.has(key)) ops.push({ type: "delete", key });
    }
    let put = 0;
    let deleted = 0;
    for (let i = 0; i < ops.length; i += MAX_OPS_PER_TXN) {
      const chunk = ops.slice(i, i + MAX_OPS_PER_TXN);
      await this.#backend.txn({ compare: [], success: chunk });
      for (const op of chunk) {
        if (op.type === "put") {
          written.set(op.key, op.value);
          put++;
        } else if (op.type === "delete") {
          written.delete(op.key);
          deleted++;
        }
      }
    }
    // Only if nothing new arrived while writing.
    if (desired === this.#desired) this.#dirty = false;
    return { put, deleted };
  }
}
