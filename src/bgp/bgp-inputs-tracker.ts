// Keeps what the BGP configuration is computed from (BgpInputs), fed by the
// syncer's batches and by this host's IPAM host record. No I/O: the agent's
// BGP runtime (bgp-runtime.ts) feeds it and asks for inputs() when it renders.
//
// Resources are validated with their schemas (so defaults are filled in as
// the renderer expects); an invalid one is left out and reported once
// through drainErrors(), as the calc graph does.
import type { Resource } from "../api/resource.js";
import type { BGPConfiguration } from "../api/schemas/bgp-configuration.js";
import type { BGPPeer } from "../api/schemas/bgp-peer.js";
import type { IPPool } from "../api/schemas/ip-pool.js";
import type { Node } from "../api/schemas/node.js";
import { validateResource } from "../api/validate.js";
import type { SyncUpdate } from "../sync/syncer.js";
import type { BgpInputs } from "./bgp-inputs.js";

const KINDS = new Set(["Node", "BGPConfiguration", "BGPPeer", "IPPool", "WorkloadEndpoint"]);

export class BgpInputsTracker {
  readonly #nodeName: string;
  readonly #nodes = new Map<string, Node>();
  readonly #configs = new Map<string, BGPConfiguration>();
  readonly #peers = new Map<string, BGPPeer>();
  readonly #pools = new Map<string, IPPool>();
  /** Local workload endpoint "namespace/name" → its addresses (no prefix length). */
  readonly #workloads = new Map<string, string[]>();
  #ownBlocks: string[] = [];
  #inSync = false;
  #errors: { resource: string; message: string }[] = [];

  constructor(nodeName: string) {
    this.#nodeName = nodeName;
  }

  /** The syncer has delivered a complete snapshot at least once. */
  get inSync(): boolean {
    return this.#inSync;
  }

  /** Feed one syncer batch; true when something BGP depends on changed. */
  onUpdates(batch: readonly SyncUpdate[]): boolean {
    let changed = false;
    for (const u of batch) {
      if (u.type === "status") {
        if (u.status === "in-sync" && !this.#inSync) {
          this.#inSync = true;
          changed = true;
        }
        continue;
      }
      const kind = u.type === "put" ? u.resource.kind : u.kind.kind;
      if (!KINDS.has(kind)) continue;
      if (u.type === "delete") {
        changed = this.#remove(kind, key(kind, u.name, u.namespace)) || changed;
        continue;
      }
      changed = this.#put(u.resource) || changed;
    }
    return changed;
  }

  /** This host's blocks, from its IPAM host record; true when they changed. */
  setOwnBlocks(blocks: readonly string[]): boolean {
    const next = [...new Set(blocks)].sort();
    if (next.join(",") === this.#ownBlocks.join(",")) return false;
    this.#ownBlocks = next;
    return true;
  }

  get ownBlocks(): readonly string[] {
    return this.#ownBlocks;
  }

  /** Resources left out since the last call (invalid). */
  drainErrors(): { resource: string; message: string }[] {
    const e = this.#errors;
    this.#errors = [];
    return e;
  }

  inputs(): BgpInputs {
    const sorted = <T>(m: Map<string, T>): T[] =>
      [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    const addresses = new Set<string>();
    for (const list of this.#workloads.values()) for (const a of list) addresses.add(a);
    return {
      nodeName: this.#nodeName,
      nodes: sorted(this.#nodes),
      bgpConfigurations: sorted(this.#configs),
      bgpPeers: sorted(this.#peers),
      ipPools: sorted(this.#pools),
      ownBlocks: [...this.#ownBlocks],
      localWorkloadAddresses: [...addresses].sort(),
    };
  }

  #remove(kind: string, id: string): boolean {
    switch (kind) {
      case "Node":
        return this.#nodes.delete(id);
      case "BGPConfiguration":
        return this.#configs.delete(id);
      case "BGPPeer":
        return this.#peers.delete(id);
      case "IPPool":
        return this.#pools.delete(id);
      case "WorkloadEndpoint":
        return this.#workloads.delete(id);
    }
    return false;
  }

  #put(raw: Resource): boolean {
    const id = key(raw.kind, raw.metadata.name, raw.metadata.namespace);
    if (raw.kind === "WorkloadEndpoint") {
      // Only the node and the addresses matter here: no full validation.
      const spec = (raw.spec ?? {}) as { node?: unknown; ipNetworks?: unknown };
      if (spec.node !== this.#nodeName) return this.#workloads.delete(id);
      const nets = Array.isArray(spec.ipNetworks) ? spec.ipNetworks : [];
      const addrs = nets
        .filter((n): n is string => typeof n === "string")
        .map((n) => n.split("/")[0] ?? n)
        .sort();
      const old = this.#workloads.get(id);
      if (old && old.join(",") === addrs.join(",")) return false;
      this.#workloads.set(id, addrs);
      return true;
    }
    const checked = validateResource(stripVersion(raw));
    if (!checked.ok) {
      const message = checked.errors.map((e) => `${e.path}: ${e.message}`).join("; ");
      this.#errors.push({ resource: `${raw.kind} "${raw.metadata.name}"`, message });
      return this.#remove(raw.kind, id);
    }
    const r = checked.resource;
    switch (raw.kind) {
      case "Node":
        return setIfChanged(this.#nodes, id, r as unknown as Node);
      case "BGPConfiguration":
        return setIfChanged(this.#configs, id, r as unknown as BGPConfiguration);
      case "BGPPeer":
        return setIfChanged(this.#peers, id, r as unknown as BGPPeer);
      case "IPPool":
        return setIfChanged(this.#pools, id, r as unknown as IPPool);
    }
    return false;
  }
}

function key(kind: string, name: string, namespace: string | undefined): string {
  return kind === "WorkloadEndpoint" ? `${namespace ?? "default"}/${name}` : name;
}

/** Without resourceVersion (it changes on every write, even when nothing BGP reads did). */
function stripVersion(r: Resource): Resource {
  const metadata = { ...r.metadata };
  delete metadata.resourceVersion;
  return { ...r, metadata };
}

function setIfChanged<T>(map: Map<string, T>, id: string, value: T): boolean {
  const old = map.get(id);
  if (old !== undefined && JSON.stringify(old) === JSON.stringify(value)) return false;
  map.set(id, value);
  return true;
}
