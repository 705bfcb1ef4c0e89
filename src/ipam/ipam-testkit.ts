// Helpers for IPAM's tests (and the benchmark): resources as an operator
// would apply them, a datastore holding them, and a backend wrapper that
// fails one chosen call, before or after it takes effect.
import type { Resource } from "../api/resource.js";
import type {
  Backend,
  KvEntry,
  TxnRequest,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from "../datastore/backend.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { TwillError } from "../util/errors.js";
import { Ipam } from "./ipam.js";
import type { IpamOptions } from "./ipam.js";

const API = "projectcalico.org/v3";

export function pool(name: string, cidr: string, spec: Record<string, unknown> = {}): Resource {
  return { apiVersion: API, kind: "IPPool", metadata: { name }, spec: { cidr, ...spec } };
}

export function node(name: string, labels: Record<string, string> = {}): Resource {
  return { apiVersion: API, kind: "Node", metadata: { name, labels }, spec: {} };
}

export function reservation(name: string, reservedCIDRs: string[]): Resource {
  return { apiVersion: API, kind: "IPReservation", metadata: { name }, spec: { reservedCIDRs } };
}

export function ipamConfig(spec: Record<string, unknown>): Resource {
  return { apiVersion: API, kind: "IPAMConfiguration", metadata: { name: "default" }, spec };
}

export function workloadEndpoint(options: {
  namespace?: string;
  name: string;
  node: string;
  ips: string[];
}): Resource {
  return {
    apiVersion: API,
    kind: "WorkloadEndpoint",
    metadata: { name: options.name, namespace: options.namespace ?? "default" },
    spec: {
      orchestrator: "cni",
      node: options.node,
      containerID: options.name,
      endpoint: "eth0",
      interfaceName: "tw0",
      ipNetworks: options.ips.map((ip) => (ip.includes(":") ? `${ip}/128` : `${ip}/32`)),
    },
  };
}

/** A pause that lets other tasks run but takes no wall-clock time. */
export const yieldSleep = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface IpamFixture {
  ipam: Ipam;
  store: ResourceStore;
  memory: MemoryBackend;
}

/** A memory datastore holding `resources`, and an Ipam over it (or over `wrap(memory)`). */
export async function ipamWith(
  resources: Resource[],
  options: IpamOptions & { wrap?: (b: Backend) => Backend } = {},
): Promise<IpamFixture> {
  const memory = new MemoryBackend();
  const setup = new ResourceStore(memory);
  for (const r of resources) await setup.create(r);
  const { wrap, ...ipamOptions } = options;
  const store = new ResourceStore(wrap ? wrap(memory) : memory);
  const ipam = new Ipam(store, { sleep: yieldSleep, ...ipamOptions });
  return { ipam, store, memory };
}

/**
 * Delegates to a backend, except that call number `failAt` (1-based,
 * counting get, list and txn) throws TwillError "Unavailable": "before"
 * without reaching the backend, "after" once the backend has done it (a
 * reply lost on the way back).
 */
export class FlakyBackend implements Backend {
  #inner: Backend;
  #calls = 0;
  failAt = 0;
  mode: "before" | "after" = "before";

  constructor(inner: Backend) {
    this.#inner = inner;
  }

  get calls(): number {
    return this.#calls;
  }

  async #call<T>(run: () => Promise<T>): Promise<T> {
    this.#calls += 1;
    if (this.#calls !== this.failAt) return run();
    const fault = new TwillError("Unavailable", `injected fault at call ${this.#calls}`);
    if (this.mode === "before") throw fault;
    await run();
    throw fault;
  }

  get(key: string): Promise<KvEntry | undefined> {
    return this.#call(() => this.#inner.get(key));
  }

  list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    return this.#call(() => this.#inner.list(prefix));
  }

  txn(request: TxnRequest): Promise<TxnResult> {
    return this.#call(() => this.#inner.txn(request));
  }

  watch(prefix: string, options: WatchOptions): AsyncIterable<WatchEvent> {
    return this.#inner.watch(prefix, options);
  }

  compact(revision: number): Promise<void> {
    return this.#inner.compact(revision);
  }

  revision(): Promise<number> {
    return this.#inner.revision();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** Every IPAM key and value of a memory backend (for "nothing changed" checks). */
export function ipamDump(memory: MemoryBackend): Record<string, string> {
  return Object.fromEntries(
    Object.entries(memory.dump()).filter(([k]) => k.startsWith("/twill/v1/ipam/")),
  );
}
