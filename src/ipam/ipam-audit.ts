// `check` and `gc`: IPAM measured against the endpoints that should own its
// allocations.
//
// Ownership. An allocation is owned when a WorkloadEndpoint lists its
// address in ipNetworks, or when its attributes name a WorkloadEndpoint
// (attributes.workloadEndpoint in attributes.namespace, default "default")
// that exists: the CNI plugin allocates before it writes the endpoint, and
// an endpoint being written must not make its address look leaked. An
// allocation with no workloadEndpoint attribute that no endpoint lists was
// made by something else (an operator's assignIP, a tunnel address): it is
// counted as "unmanaged" and never garbage-collected. As in Calico, an
// allocation is valid until proven leaked.
//
// A host is known when a Node has its name or some WorkloadEndpoint runs on
// it (spec.node): labs and tests may run hosts with no Node resource.
//
// Garbage collection (dry run unless asked):
// - A leaked allocation is released once its endpoint has been gone for the
//   grace period. When it went is not stored anywhere, so the first `gc`
//   that sees a leak records it under ipam/leaks/<ip> (handle, sequence,
//   firstSeen); a later `gc` releases it once firstSeen is grace old and the
//   allocation itself is grace old (an address handed out moments ago has
//   no endpoint yet). Two observations gate every release, as in Calico;
//   `--grace 0` releases on the first. The dry run records observations
//   too (that is how a later real run can act) but frees nothing. Right
//   before releasing, the endpoints are read again, and the release itself
//   compares handle and sequence, so an address reused in between is safe.
// - The block of a host that is gone (not known, see above) loses its
//   affinity once the block has been idle (no write) for the grace period:
//   an empty block is deleted, a block with allocations stays with no host.
// - An empty block of a live host idle for the grace period goes back to
//   the pool, except the host's most recently used block of each family, so
//   its next workload needs no claim.
// Records of leaks that are gone (released, or the endpoint came back) are
// deleted.
import { formatIP, parseCIDR } from "../api/ip.js";
import type { IPFamily } from "../api/ip.js";
import type { Resource } from "../api/resource.js";
import type { KvEntry } from "../datastore/backend.js";
import type { ResourceStore } from "../datastore/resource-store.js";
import { TwillError } from "../util/errors.js";
import { cidrFromKeySegment } from "./block-math.js";
import { allocationsOf, blockCIDR, isEmpty, parseBlock } from "./block-record.js";
import type { AllocationAttributes, BlockRecord } from "./block-record.js";
import type { Ipam, ReleaseResult } from "./ipam.js";
import { parseAffinityKey } from "./ipam-keys.js";
import { NODE, WORKLOAD_ENDPOINT, loadPolicy, poolOf } from "./ipam-policy.js";
import {
  parseAffinityRecord,
  parseHandleRecord,
  parseHostRecord,
  parseLeakRecord,
} from "./ipam-records.js";
import type { LeakRecord } from "./ipam-records.js";
import { ChangeSet } from "./ipam-txn.js";

export const REPORT_VERSION = 1;

export interface LeakedAllocation {
  ip: string;
  block: string;
  host: string | null;
  handle: string;
  sequence: number;
  allocatedAt: string;
  attributes: AllocationAttributes;
}

export interface EndpointWithoutAllocation {
  namespace: string;
  name: string;
  node?: string;
  ip: string;
  reason: string;
}

export interface BlockWithoutHost {
  cidr: string;
  host: string | null;
  allocations: number;
  updatedAt: string;
  reason: string;
}

export interface IpamProblem {
  key: string;
  message: string;
}

export interface IpamReport {
  version: typeof REPORT_VERSION;
  checkedAt: string;
  summary: {
    pools: number;
    blocks: number;
    allocations: number;
    unmanaged: number;
    workloadEndpoints: number;
    nodes: number;
  };
  /** Allocations whose endpoint does not exist. */
  leakedAllocations: LeakedAllocation[];
  /** Endpoint addresses inside a pool that IPAM has not allocated to them. */
  endpointsWithoutAllocation: EndpointWithoutAllocation[];
  /** Blocks no known host holds. */
  blocksWithoutHost: BlockWithoutHost[];
  /** IPAM records that disagree with each other. */
  problems: IpamProblem[];
}

/** True when the report found nothing to act on. */
export function reportIsClean(report: IpamReport): boolean {
  return (
    report.leakedAllocations.length === 0 &&
    report.endpointsWithoutAllocation.length === 0 &&
    report.blocksWithoutHost.length === 0 &&
    report.problems.length === 0
  );
}

interface Endpoint {
  namespace: string;
  name: string;
  node: string | undefined;
  ips: string[];
}

interface EndpointIndex {
  byName: Map<string, Endpoint>;
  byIP: Map<string, Endpoint[]>;
  all: Endpoint[];
}

function endpointOf(res: Resource): Endpoint {
  const spec = (res.spec ?? {}) as { node?: unknown; ipNetworks?: unknown };
  const ips: string[] = [];
  if (Array.isArray(spec.ipNetworks)) {
    for (const n of spec.ipNetworks) {
      const c = typeof n === "string" ? parseCIDR(n, { allowBareIP: true }) : undefined;
      if (c) ips.push(formatIP(c.family, c.network));
    }
  }
  return {
    namespace: res.metadata.namespace ?? "default",
    name: res.metadata.name,
    node: typeof spec.node === "string" ? spec.node : undefined,
    ips,
  };
}

async function loadEndpoints(store: ResourceStore): Promise<EndpointIndex> {
  const { items } = await store.list(WORKLOAD_ENDPOINT);
  const index: EndpointIndex = { byName: new Map(), byIP: new Map(), all: [] };
  for (const res of items) {
    const ep = endpointOf(res);
    index.all.push(ep);
    index.byName.set(`${ep.namespace}/${ep.name}`, ep);
    for (const ip of ep.ips) {
      const list = index.byIP.get(ip) ?? [];
      list.push(ep);
      index.byIP.set(ip, list);
    }
  }
  return index;
}

function namedEndpoint(attributes: AllocationAttributes): string | undefined {
  const name = attributes["workloadEndpoint"];
  if (name === undefined || name === "") return undefined;
  return `${attributes["namespace"] || "default"}/${name}`;
}

/** "owned", "unmanaged" or "leaked" (see the file header). */
function ownership(
  ip: string,
  attributes: AllocationAttributes,
  endpoints: EndpointIndex,
): "owned" | "unmanaged" | "leaked" {
  if (endpoints.byIP.has(ip)) return "owned";
  const named = namedEndpoint(attributes);
  if (named === undefined) return "unmanaged";
  return endpoints.byName.has(named) ? "owned" : "leaked";
}

interface ParsedBlock {
  key: string;
  entry: KvEntry;
  block: BlockRecord;
}

export async function checkIpam(ipam: Ipam, now: number): Promise<IpamReport> {
  const { store, keys } = ipam;
  const backend = store.backend;
  // Blocks first, then endpoints: an allocation made after the block list
  // is not seen at all, rather than seen without its new endpoint.
  const blockList = await backend.list(keys.blocks);
  const [policy, endpoints, nodes, affinities, hosts, handles] = await Promise.all([
    loadPolicy(store),
    loadEndpoints(store),
    store.list(NODE),
    backend.list(keys.affinities),
    backend.list(keys.hosts),
    backend.list(keys.handles),
  ]);
  const problems: IpamProblem[] = [];
  const blocks: ParsedBlock[] = [];
  for (const entry of blockList.entries) {
    try {
      const block = parseBlock(entry.value, entry.key);
      if (keys.block(block.cidr) !== entry.key) {
        problems.push({ key: entry.key, message: `holds block "${block.cidr}", another key's` });
        continue;
      }
      blocks.push({ key: entry.key, entry, block });
    } catch (err) {
      problems.push({ key: entry.key, message: err instanceof Error ? err.message : String(err) });
    }
  }
  const nodeNames = new Set(nodes.items.map((n) => n.metadata.name));
  const knownHosts = new Set(nodeNames);
  for (const ep of endpoints.all) if (ep.node !== undefined) knownHosts.add(ep.node);

  const report: IpamReport = {
    version: REPORT_VERSION,
    checkedAt: new Date(now).toISOString(),
    summary: {
      pools: policy.pools.length,
      blocks: blocks.length,
      allocations: 0,
      unmanaged: 0,
      workloadEndpoints: endpoints.all.length,
      nodes: nodeNames.size,
    },
    leakedAllocations: [],
    endpointsWithoutAllocation: [],
    blocksWithoutHost: [],
    problems,
  };

  // Allocations against endpoints; handle counts as the blocks say.
  const allocated = new Map<string, { handle: string; attributes: AllocationAttributes }>();
  const handleCounts = new Map<string, Map<string, number>>();
  for (const { block } of blocks) {
    for (const { ip, record } of allocationsOf(block)) {
      report.summary.allocations += 1;
      allocated.set(ip, { handle: record.handle, attributes: record.attributes });
      const counts = handleCounts.get(record.handle) ?? new Map<string, number>();
      counts.set(block.cidr, (counts.get(block.cidr) ?? 0) + 1);
      handleCounts.set(record.handle, counts);
      const owner = ownership(ip, record.attributes, endpoints);
      if (owner === "unmanaged") report.summary.unmanaged += 1;
      if (owner !== "leaked") continue;
      report.leakedAllocations.push({
        ip,
        block: block.cidr,
        host: block.affinity,
        handle: record.handle,
        sequence: record.sequence,
        allocatedAt: record.allocatedAt,
        attributes: { ...record.attributes },
      });
    }
  }

  for (const ep of endpoints.all) {
    for (const ip of ep.ips) {
      const c = parseCIDR(ip, { allowBareIP: true });
      if (!c || !poolOf(policy.pools, c)) continue; // not IPAM's address
      const a = allocated.get(ip);
      let reason: string | undefined;
      if (!a) {
        reason = "not allocated";
      } else {
        const named = namedEndpoint(a.attributes);
        if (named !== undefined && named !== `${ep.namespace}/${ep.name}`) {
          reason = `allocated to endpoint "${named}" (handle "${a.handle}")`;
        }
      }
      if (reason === undefined) continue;
      const problem: EndpointWithoutAllocation = {
        namespace: ep.namespace,
        name: ep.name,
        ip,
        reason,
      };
      if (ep.node !== undefined) problem.node = ep.node;
      report.endpointsWithoutAllocation.push(problem);
    }
  }

  // Blocks: host known, in a pool, agreeing with affinity keys and host lists.
  const affinityByKey = new Map<string, { host: string; state: string }>();
  for (const entry of affinities.entries) {
    const parsed = parseAffinityKey(keys, entry.key);
    const cidr = parsed ? cidrFromKeySegment(parsed.cidrSegment) : undefined;
    if (!parsed || !cidr) {
      problems.push({ key: entry.key, message: "is not an affinity key" });
      continue;
    }
    try {
      const rec = parseAffinityRecord(entry);
      affinityByKey.set(entry.key, { host: parsed.host, state: rec.state });
      if (rec.state !== "confirmed") {
        problems.push({
          key: entry.key,
          message: `affinity is "${rec.state}" (treated as absent)`,
        });
      }
    } catch (err) {
      problems.push({ key: entry.key, message: err instanceof Error ? err.message : String(err) });
    }
  }
  const blockByCidr = new Map(blocks.map((b) => [b.block.cidr, b.block]));
  const hostLists = new Map<string, Set<string>>();
  for (const entry of hosts.entries) {
    try {
      const rec = parseHostRecord(entry);
      hostLists.set(rec.host, new Set(rec.blocks));
      for (const cidr of rec.blocks) {
        const b = blockByCidr.get(cidr);
        if (!b)
          problems.push({ key: entry.key, message: `lists block "${cidr}", which does not exist` });
        else if (b.affinity !== rec.host) {
          problems.push({
            key: entry.key,
            message: `lists block "${cidr}", which belongs to ${b.affinity === null ? "no host" : `host "${b.affinity}"`}`,
          });
        }
      }
    } catch (err) {
      problems.push({ key: entry.key, message: err instanceof Error ? err.message : String(err) });
    }
  }
  const affineKeys = new Set<string>();
  for (const { key, block } of blocks) {
    const cidr = blockCIDR(block);
    if (!poolOf(policy.pools, cidr)) {
      problems.push({ key, message: `block "${block.cidr}" is in no IP pool` });
    }
    const count = Object.keys(block.allocations).length;
    if (block.affinity === null) {
      report.blocksWithoutHost.push({
        cidr: block.cidr,
        host: null,
        allocations: count,
        updatedAt: block.updatedAt,
        reason: "no host holds it",
      });
      continue;
    }
    const host = block.affinity;
    const affinityKey = keys.affinity(host, block.cidr);
    affineKeys.add(affinityKey);
    if (!affinityByKey.has(affinityKey)) {
      problems.push({ key, message: `held by host "${host}" but "${affinityKey}" is missing` });
    }
    if (!hostLists.get(host)?.has(block.cidr)) {
      problems.push({ key, message: `held by host "${host}" but missing from its host record` });
    }
    if (!knownHosts.has(host)) {
      report.blocksWithoutHost.push({
        cidr: block.cidr,
        host,
        allocations: count,
        updatedAt: block.updatedAt,
        reason: `host "${host}" has no Node and no workload endpoint`,
      });
    }
  }
  for (const [key, { host }] of affinityByKey) {
    if (!affineKeys.has(key)) {
      problems.push({
        key,
        message: `affinity of host "${host}" to a block that does not name it`,
      });
    }
  }

  // Handles against the counts the blocks imply.
  const seenHandles = new Set<string>();
  for (const entry of handles.entries) {
    try {
      const rec = parseHandleRecord(entry);
      seenHandles.add(rec.handle);
      const actual = handleCounts.get(rec.handle) ?? new Map<string, number>();
      const cidrs = new Set([...Object.keys(rec.blocks), ...actual.keys()]);
      for (const cidr of [...cidrs].sort()) {
        const want = rec.blocks[cidr] ?? 0;
        const have = actual.get(cidr) ?? 0;
        if (want !== have) {
          problems.push({
            key: entry.key,
            message: `counts ${want} address(es) in block "${cidr}", which holds ${have} for it`,
          });
        }
      }
    } catch (err) {
      problems.push({ key: entry.key, message: err instanceof Error ? err.message : String(err) });
    }
  }
  for (const handle of [...handleCounts.keys()].sort()) {
    if (!seenHandles.has(handle)) {
      problems.push({
        key: keys.handle(handle),
        message: `handle "${handle}" holds addresses but has no record`,
      });
    }
  }
  return report;
}

export interface GcOptions {
  /** How long an endpoint must have been gone (and a block idle) before gc acts. */
  graceMs: number;
  /** The time to judge by (ms since the epoch; default the Ipam's clock). */
  now?: number;
  /** Default true: report and record observations, free nothing. */
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface GcLeak extends LeakedAllocation {
  firstSeen: string;
  /** Since firstSeen. */
  leakedForMs: number;
  /** Since allocatedAt. */
  allocatedForMs: number;
  due: boolean;
}

export interface GcBlock {
  cidr: string;
  host: string;
  /** "hostGone": the block's host is not known; "empty": a spare empty block of a live host. */
  reason: "hostGone" | "empty";
  allocations: number;
  /** Since the block's last write. */
  idleForMs: number;
  due: boolean;
  /** What the real run did (absent in a dry run). */
  outcome?: string;
}

export interface GcResult {
  dryRun: boolean;
  graceMs: number;
  report: IpamReport;
  leaks: GcLeak[];
  blocks: GcBlock[];
  /** Leak observations written (new leaks) and deleted (leaks gone). */
  observationsRecorded: number;
  observationsCleared: number;
  released: ReleaseResult["released"];
  /** Due leaks left alone, and why. */
  skipped: { ip: string; reason: string }[];
}

function since(now: number, text: string): number {
  const t = Date.parse(text);
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : Math.max(0, now - t);
}

export async function gcIpam(ipam: Ipam, options: GcOptions): Promise<GcResult> {
  const { graceMs } = options;
  if (!Number.isFinite(graceMs) || graceMs < 0) {
    throw new TwillError("Invalid", `grace period: ${graceMs} ms is not a duration >= 0`);
  }
  const now = options.now ?? ipam.now();
  const dryRun = options.dryRun ?? true;
  const report = await checkIpam(ipam, now);
  const backend = ipam.store.backend;
  const result: GcResult = {
    dryRun,
    graceMs,
    report,
    leaks: [],
    blocks: [],
    observationsRecorded: 0,
    observationsCleared: 0,
    released: [],
    skipped: [],
  };

  // Leak observations.
  const observed = new Map<string, { entry: KvEntry; rec: LeakRecord | undefined }>();
  for (const entry of (await backend.list(ipam.keys.leaks)).entries) {
    const ip = entry.key.slice(ipam.keys.leaks.length);
    let rec: LeakRecord | undefined;
    try {
      rec = parseLeakRecord(entry);
    } catch {
      rec = undefined; // corrupt: replaced or deleted below
    }
    observed.set(ip, { entry, rec });
  }
  const writes: ChangeSet[] = [];
  const current = new Set<string>();
  const firstSeenNow = new Date(now).toISOString();
  for (const leak of report.leakedAllocations) {
    current.add(leak.ip);
    const seen = observed.get(leak.ip);
    const matches =
      seen?.rec !== undefined &&
      seen.rec.handle === leak.handle &&
      seen.rec.sequence === leak.sequence;
    const firstSeen = matches && seen?.rec ? seen.rec.firstSeen : firstSeenNow;
    if (!matches) {
      const record: LeakRecord = {
        ip: leak.ip,
        handle: leak.handle,
        sequence: leak.sequence,
        firstSeen,
      };
      writes.push(
        new ChangeSet()
          .expect(ipam.keys.leak(leak.ip), seen?.entry)
          .put(ipam.keys.leak(leak.ip), record),
      );
    }
    const leakedForMs = since(now, firstSeen);
    const allocatedForMs = since(now, leak.allocatedAt);
    result.leaks.push({
      ...leak,
      firstSeen,
      leakedForMs,
      allocatedForMs,
      due: leakedForMs >= graceMs && allocatedForMs >= graceMs,
    });
  }
  const stale: ChangeSet[] = [];
  for (const [ip, { entry }] of observed) {
    if (!current.has(ip)) stale.push(new ChangeSet().expect(entry.key, entry).delete(entry.key));
  }
  // Observations are bookkeeping: one lost to a concurrent gc is simply
  // made again by the next run.
  for (const change of writes) {
    if ((await change.commit(backend)).succeeded) result.observationsRecorded += 1;
  }
  for (const change of stale) {
    if ((await change.commit(backend)).succeeded) result.observationsCleared += 1;
  }

  // Blocks of hosts that are gone, and spare empty blocks of live hosts (a
  // corrupt block is skipped here: the report names it).
  const blocks: BlockRecord[] = [];
  for (const entry of (await backend.list(ipam.keys.blocks)).entries) {
    try {
      blocks.push(parseBlock(entry.value, entry.key));
    } catch {
      continue;
    }
  }
  for (const b of report.blocksWithoutHost) {
    if (b.host === null) continue;
    const idleForMs = since(now, b.updatedAt);
    result.blocks.push({
      cidr: b.cidr,
      host: b.host,
      reason: "hostGone",
      allocations: b.allocations,
      idleForMs,
      due: idleForMs >= graceMs,
    });
  }
  const gone = new Set(result.blocks.map((b) => b.cidr));
  const byHostFamily = new Map<string, BlockRecord[]>();
  for (const block of blocks) {
    if (block.affinity === null || gone.has(block.cidr)) continue;
    const family: IPFamily = blockCIDR(block).family;
    const k = `${block.affinity}\u0000${family}`;
    const list = byHostFamily.get(k) ?? [];
    list.push(block);
    byHostFamily.set(k, list);
  }
  for (const list of byHostFamily.values()) {
    const empty = list.filter(isEmpty);
    if (empty.length === 0) continue;
    // Keep the host's most recently used block when all of them are empty.
    const keep =
      empty.length === list.length
        ? [...empty].sort((a, b) => since(now, a.updatedAt) - since(now, b.updatedAt))[0]
        : undefined;
    for (const block of empty) {
      if (block === keep) continue;
      const idleForMs = since(now, block.updatedAt);
      result.blocks.push({
        cidr: block.cidr,
        host: block.affinity as string,
        reason: "empty",
        allocations: 0,
        idleForMs,
        due: idleForMs >= graceMs,
      });
    }
  }
  if (dryRun) return result;

  // Re-check the endpoints right before releasing: one may have come back.
  const endpoints = await loadEndpoints(ipam.store);
  const toRelease = result.leaks.filter((leak) => {
    if (!leak.due) return false;
    if (ownership(leak.ip, leak.attributes, endpoints) !== "leaked") {
      result.skipped.push({ ip: leak.ip, reason: "its endpoint exists again" });
      return false;
    }
    return true;
  });
  const signal = options.signal ? { signal: options.signal } : {};
  for (const b of result.blocks) {
    if (!b.due || b.reason !== "hostGone") continue;
    b.outcome = await ipam.releaseAffinity(b.cidr, { host: b.host, ...signal });
  }
  if (toRelease.length > 0) {
    const released = await ipam.releaseAllocations(
      toRelease.map((l) => ({ ip: l.ip, handle: l.handle, sequence: l.sequence })),
      signal,
    );
    result.released = released.released;
    for (const m of released.mismatched) result.skipped.push(m);
    for (const ip of released.notAllocated) {
      result.skipped.push({ ip, reason: "already released" });
    }
    const done = new Set([...released.released.map((r) => r.ip), ...released.notAllocated]);
    const entries = await backend.list(ipam.keys.leaks);
    for (const entry of entries.entries) {
      if (!done.has(entry.key.slice(ipam.keys.leaks.length))) continue;
      const change = new ChangeSet().expect(entry.key, entry).delete(entry.key);
      if ((await change.commit(backend)).succeeded) result.observationsCleared += 1;
    }
  }
  for (const b of result.blocks) {
    if (!b.due || b.reason !== "empty") continue;
    b.outcome = await ipam.releaseAffinity(b.cidr, {
      host: b.host,
      mustBeEmpty: true,
      ...signal,
    });
  }
  return result;
}
