// The slice of the datastore the CLI uses. The real ResourceStore (over etcd
// or memory) satisfies it; keeping it narrow means the CLI's tests need
// nothing more than a store over the memory backend.
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import type { Backend } from "../datastore/backend.js";

export interface CliStore {
  get(kind: KindInfo, name: string, options?: { namespace?: string }): Promise<Resource>;
  list(
    kind: KindInfo,
    options?: { namespace?: string },
  ): Promise<{ items: Resource[]; revision: number | string }>;
  create(resource: Resource): Promise<Resource>;
  update(resource: Resource): Promise<Resource>;
  apply(resource: Resource): Promise<{ resource: Resource; created: boolean; unchanged: boolean }>;
  delete(
    kind: KindInfo,
    name: string,
    options?: { namespace?: string; resourceVersion?: string },
  ): Promise<unknown>;
  /** The key-value backend, for commands that work below resources (ipam). */
  backend?: Backend;
  /** Releases the connection; the CLI calls it once, after its command. */
  close(): Promise<void>;
}

/** The global `--etcd-*` flags, as given (environment fallbacks are the opener's job). */
export interface DatastoreFlags {
  etcdEndpoints?: string;
  etcdCaFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  etcdUsername?: string;
  etcdPassword?: string;
}
