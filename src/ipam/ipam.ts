// IPAM: hands out workload addresses from IP pools, on the datastore's
// transactions alone (no lock, no lock file, no leader).
//
//   pool 10.65.0.0/16 ──split──► blocks /26 ──claimed by──► host-1, host-2 ...
//                                  │
//                                  └─ allocations: ordinal → handle + attributes
//
// A host takes addresses from its own blocks first (one route per block);
// with none free it claims a new block from a pool whose nodeSelector
// matches its Node labels (up to maxBlocksPerHost); when it can claim none
// it borrows a free address from another host's block, unless
// strictAffinity is set. Keys and values: ipam-keys.ts, block-record.ts.
//
// Invariants:
// - Every change is ONE transaction that compares every IPAM key it read
//   (ChangeSet refuses to write a key it did not compare). A lost race
//   writes nothing; the operation reads again, at most `maxRetries` more
//   times (default 30), pausing a jittered 0-8 ms, 0-16 ms, ... up to 0-250 ms.
//   The policy resources (pools, reservations, IPAMConfiguration, Node) are
//   read once per operation and not compared, except the pool of a block
//   being claimed (docs/ipam.md, "Consistency", says why that is safe).
// - A block claim creates the block (compare createRevision = 0), its
//   affinity key (createRevision = 0) and the host's block list (compared,
//   which also bounds maxBlocksPerHost) in the same transaction, so two
//   hosts racing for one block cannot both win, and a claim is never half
//   written. A dual-stack request is one transaction too.
// - Releases compare the handle (and, from a check report, the allocation's
//   sequence), so a release never frees an address since given to someone
//   else. Releasing what is already free is not an error.
// - An empty block with no host is deleted by the release that empties it.
//   Empty blocks of a live host are kept (the next workload there needs no
//   claim); `gc` returns them to the pool after a grace period, keeping one
//   block per host and family, as Calico's GC does.
//
// The CNI plugin's conventions (relied on by check and gc): handle =
// "<network name>.<container id>"; attributes { node, namespace, pod,
// containerID, workloadEndpoint (the WorkloadEndpoint's name) }.
import { cidrContainsIP, formatCIDR, formatIP, parseCIDR, parseIP } from "../api/ip.js";
import type { CIDR, IPAddress, IPFamily } from "../api/ip.js";
import { readMany } from "../datastore/backend.js";
import type { Backend } from "../datastore/backend.js";
import { decodeResource } from "../datastore/resource-store.js";
import type { ResourceStore } from "../datastore/resource-store.js";
import { TwillError } from "../util/errors.js";
import {
  blockContaining,
  candidateBlocks,
  cidrFromKeySegment,
  cidrSize,
  findFreeBlock,
  hashString,
  isReserved,
  ordinalOf,
  reservedCount,
} from "./block-math.js";
import {
  allocateNext,
  allocatedCount,
  assignAddress,
  blockCIDR,
  freeCount,
  isEmpty,
  newBlock,
  ordinalsOfHandle,
  parseBlock,
  releaseOrdinals,
} from "./block-record.js";
import type {
  AllocationAttributes,
  AllocationRecord,
  BlockRecord,
  NewAllocation,
  ReleaseRequest,
} from "./block-record.js";
import { checkIpam, gcIpam } from "./ipam-audit.js";
import type { GcOptions, GcResult, IpamReport } from "./ipam-audit.js";
import { ipamKeys, parseAffinityKey } from "./ipam-keys.js";
import type { IpamKeys } from "./ipam-keys.js";
import {
  NODE,
  eligiblePools,
  loadPolicy,
  nodeLabelsFrom,
  policyFromSnapshot,
  policyReads,
  poolOf,
} from "./ipam-policy.js";
import type { IpamPolicy, PoolInfo } from "./ipam-policy.js";
import { parseHandleRecord, parseHostRecord } from "./ipam-records.js";
import type { HandleRecord, HostRecord } from "./ipam-records.js";
import { ChangeSet, DEFAULT_MAX_RETRIES, checkAborted, readKeys, withRetries } from "./ipam-txn.js";
import type { ReadCache, RetryDeps } from "./ipam-txn.js";

export { DEFAULT_MAX_RETRIES } from "./ipam-txn.js";

export interface IpamOptions {
  /** Pause between retries (default: a timer). */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1) (default Math.random). */
  random?: () => number;
  /** Retries after the first attempt when a compare fails (default 30). */
  maxRetries?: number;
  /** Clock in ms since the epoch, for allocatedAt/updatedAt (default Date.now). */
  now?: () => number;
}

/**
 * What an allocation records. `node` defaults to the host. Other keys are
 * kept as given (string values only).
 */
export interface IpamAttributes {
  node?: string;
  namespace?: string;
  pod?: string;
  containerID?: string;
  /** The WorkloadEndpoint's name: `check` and `gc` look the endpoint up by it. */
  workloadEndpoint?: string;
  [key: string]: string | undefined;
}

export interface AutoAssignRequest {
  /** The host (Node name) whose blocks are used. */
  host: string;
  /** Identifies the owner; the CNI plugin uses "<network name>.<container id>". */
  handle: string;
  attributes?: IpamAttributes;
  /**
   * IPv4 addresses wanted (default 1). "auto": one if some IPv4 pool serves
   * the host, else none (dual stack "when both kinds of pool exist").
   */
  num4?: 0 | 1 | "auto";
  /** IPv6 addresses wanted (default 0), or "auto" as for num4. */
  num6?: 0 | 1 | "auto";
  /** Only these IPv4 pools (names or CIDRs); Manual pools must be named to be used. */
  pools4?: readonly string[];
  /** Only these IPv6 pools (names or CIDRs). */
  pools6?: readonly string[];
  signal?: AbortSignal;
}

export interface AutoAssignResult {
  ipv4: string[];
  ipv6: string[];
  /** Things the caller may want to log (a missing Node, skipped invalid resources). */
  warnings: string[];
}

export interface AssignIPRequest {
  ip: string;
  host: string;
  handle: string;
  attributes?: IpamAttributes;
  signal?: AbortSignal;
}

export interface ReleaseItem {
  ip: string;
  /** Release only if held under this handle. */
  handle?: string;
  /** Release only if still the allocation made at this sequence (from a check report). */
  sequence?: number;
}

export interface ReleaseResult {
  released: { ip: string; handle: string }[];
  /** Addresses that were already free (or in no block). */
  notAllocated: string[];
  /** Addresses left alone because they are held by someone else now. */
  mismatched: { ip: string; reason: string }[];
}

export interface Allocation {
  ip: string;
  block: string;
  /** The block's host; null for a block no host holds. */
  host: string | null;
  handle: string;
  sequence: number;
  allocatedAt: string;
  attributes: AllocationAttributes;
}

export interface AddressInfo {
  ip: string;
  /** The pool whose range holds the address, if any. */
  pool?: string;
  /** The block holding the address, if it exists. */
  block?: { cidr: string; host: string | null };
  reserved: boolean;
  allocation?: Allocation;
}

export interface BlockInfo {
  key: string;
  modRevision: number;
  block: BlockRecord;
}

export interface PoolUsage {
  name: string;
  cidr: string;
  blockSize: number;
  disabled: boolean;
  /** Addresses in the pool (bigint: an IPv6 pool can hold 2^80). */
  total: bigint;
  inUse: number;
  blocks: number;
}

export interface BlockUsage {
  cidr: string;
  /** The pool holding the block; null when the pool is gone. */
  pool: string | null;
  host: string | null;
  total: number;
  inUse: number;
  /** Free addresses auto-assignment may hand out (not reserved). */
  free: number;
  reserved: number;
}

export interface UsageReport {
  pools: PoolUsage[];
  blocks: BlockUsage[];
}

/** Most gets per read round while looking through a host's blocks (newest first). */
const OWN_BLOCK_BATCH = 4;
/** Most addresses one release transaction frees (keeps it under etcd's 128 ops). */
const RELEASE_CHUNK = 60;
/** Most blocks one releaseByHandle transaction rewrites. */
const HANDLE_BLOCK_CHUNK = 100;

interface Planned {
  family: IPFamily;
  key: string;
  /** The block's revision as read (0 for a block about to be claimed). */
  modRevision: number;
  block: BlockRecord;
  ip: string;
  claim?: PoolInfo;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function requireText(field: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new TwillError("Invalid", `${field}: must be a non-empty string`);
  }
  return value;
}

function requireIP(text: string): IPAddress {
  const ip = typeof text === "string" ? parseIP(text) : undefined;
  if (!ip) throw new TwillError("Invalid", `"${String(text)}" is not an IP address`);
  return ip;
}

function attributesOf(given: IpamAttributes | undefined, host: string): AllocationAttributes {
  const out: AllocationAttributes = { node: host };
  for (const [k, v] of Object.entries(given ?? {})) {
    if (v === undefined) continue;
    if (typeof v !== "string") throw new TwillError("Invalid", `attributes.${k}: must be a string`);
    out[k] = v;
  }
  return out;
}

function addToHandle(rec: HandleRecord, cidr: string, delta: number): void {
  const n = (rec.blocks[cidr] ?? 0) + delta;
  if (n > 0) rec.blocks[cidr] = n;
  else delete rec.blocks[cidr];
}

export class Ipam {
  readonly store: ResourceStore;
  readonly keys: IpamKeys;
  #backend: Backend;
  #retry: RetryDeps;
  #now: () => number;
  #casRetries = 0;

  constructor(store: ResourceStore, options: IpamOptions = {}) {
    this.store = store;
    this.keys = ipamKeys(store.prefix);
    this.#backend = store.backend;
    this.#now = options.now ?? (() => Date.now());
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new TwillError("Invalid", `maxRetries: ${maxRetries} is not a whole number >= 0`);
    }
    this.#retry = {
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      random: options.random ?? Math.random,
      maxRetries,
      onRetry: () => {
        this.#casRetries += 1;
      },
    };
  }

  /** Transactions lost to a concurrent writer (and retried) since this Ipam was made. */
  get stats(): { casRetries: number } {
    return { casRetries: this.#casRetries };
  }

  /** The clock this Ipam uses (ms since the epoch). */
  now(): number {
    return this.#now();
  }

  /**
   * One IPv4 and/or one IPv6 address for `handle` on `host`, in one
   * transaction. TwillError "Exhausted" when no address can be had, naming
   * the reason; "NotFound"/"Invalid" for a named pool that does not exist or
   * may not be used; "Conflict" after maxRetries lost races.
   */
  async autoAssign(req: AutoAssignRequest): Promise<AutoAssignResult> {
    const host = requireText("host", req.host);
    const handle = requireText("handle", req.handle);
    const num4 = req.num4 ?? 1;
    const num6 = req.num6 ?? 0;
    for (const [field, n] of [
      ["num4", num4],
      ["num6", num6],
    ] as const) {
      if (n !== 0 && n !== 1 && n !== "auto") {
        throw new TwillError("Invalid", `${field}: must be 0, 1 or "auto", got ${String(n)}`);
      }
    }
    const wanted = new Map<IPFamily, 1 | "auto">();
    if (num4 !== 0) wanted.set(4, num4);
    if (num6 !== 0) wanted.set(6, num6);
    const families = [...wanted.keys()];
    if (families.length === 0) return { ipv4: [], ipv6: [], warnings: [] };
    const what = `assigning an address to handle "${handle}" on host "${host}"`;
    checkAborted(req.signal, what);
    // What the first attempt needs, read in one request (one etcd
    // transaction where the backend can): the policy (pools, reservations,
    // IPAMConfiguration), the host's Node (its labels), the host's block
    // list and the handle. An allocation from the host's own block then
    // takes three round trips: this one, the block, the commit.
    const reads = policyReads(this.store);
    const nodeKey = this.store.key(NODE, host);
    const hostKey = this.keys.host(host);
    const handleKey = this.keys.handle(handle);
    const snapshot = await readMany(this.#backend, {
      keys: [...reads.keys, nodeKey, hostKey, handleKey],
      prefixes: reads.prefixes,
    });
    const firstPolicy = policyFromSnapshot(this.store, snapshot);
    const nodeEntry = snapshot.gets.get(nodeKey);
    const node = nodeLabelsFrom(nodeEntry && decodeResource(nodeEntry), host);
    let policy = firstPolicy;
    let initial: ReadCache | undefined = new Map([
      [hostKey, snapshot.gets.get(hostKey)],
      [handleKey, snapshot.gets.get(handleKey)],
    ]);
    const poolsFor = (p: IpamPolicy): Map<IPFamily, PoolInfo[]> => {
      const out = new Map<IPFamily, PoolInfo[]>();
      const reasons: string[] = [];
      for (const f of families) {
        const eligible = eligiblePools(p, f, node.labels, f === 4 ? req.pools4 : req.pools6);
        if (eligible.length > 0) {
          out.set(f, eligible);
          continue;
        }
        const reason = `no IPv${f} pool serves host "${host}": ${noPoolReason(p, f)}`;
        if (wanted.get(f) === 1) throw new TwillError("Exhausted", reason);
        reasons.push(reason);
      }
      if (out.size === 0) throw new TwillError("Exhausted", reasons.join("; "));
      return out;
    };
    let pools = poolsFor(policy);
    let reloadPolicy = false;
    const attributes = attributesOf(req.attributes, host);
    const knownTaken = new Set<string>();
    // Blocks the last attempt wanted: a retry reads them together with the
    // host and handle, in one round trip (after the pause, so fresh).
    let hint: string[] = [];
    const ips = await withRetries(this.#retry, what, req.signal, async () => {
      if (reloadPolicy) {
        // A claim compares its pool's revision: the pool may have changed.
        policy = await loadPolicy(this.store);
        pools = poolsFor(policy);
        reloadPolicy = false;
      }
      const plan = await this.#planAutoAssign(
        host,
        handle,
        pools,
        policy,
        attributes,
        knownTaken,
        hint,
        initial,
      );
      initial = undefined;
      const result = await plan.change.commit(this.#backend);
      if (result.succeeded) return plan.ips;
      // A claimed block that turns out to exist (with no host, so it was not
      // in the affinity list) is skipped on the next attempt.
      for (const cidr of plan.claimed) {
        if (result.fresh.get(this.keys.block(cidr))) knownTaken.add(cidr);
      }
      reloadPolicy = plan.claimed.length > 0;
      hint = plan.blockKeys;
      return undefined;
    });
    const warnings = [...policy.warnings, ...node.warnings];
    return { ipv4: ips.get(4) ?? [], ipv6: ips.get(6) ?? [], warnings };
  }

  async #planAutoAssign(
    host: string,
    handle: string,
    pools: Map<IPFamily, PoolInfo[]>,
    policy: IpamPolicy,
    attributes: AllocationAttributes,
    knownTaken: ReadonlySet<string>,
    hint: readonly string[],
    initial: ReadCache | undefined,
  ): Promise<{
    change: ChangeSet;
    ips: Map<IPFamily, string[]>;
    claimed: string[];
    blockKeys: string[];
  }> {
    const nowMs = this.#now();
    const alloc: NewAllocation = { handle, attributes, now: iso(nowMs) };
    const hostKey = this.keys.host(host);
    const handleKey = this.keys.handle(handle);
    const first = await readKeys(this.#backend, [hostKey, handleKey, ...hint], initial);
    const hostEntry = first.get(hostKey);
    const handleEntry = first.get(handleKey);
    const hostRec: HostRecord = hostEntry ? parseHostRecord(hostEntry) : { host, blocks: [] };
    const handleRec: HandleRecord = handleEntry
      ? parseHandleRecord(handleEntry)
      : { handle, blocks: {} };
    const change = new ChangeSet();
    const ips = new Map<IPFamily, string[]>();
    const claimed: string[] = [];
    const blockKeys: string[] = [];
    let claimedCidrs: Set<string> | undefined;
    let allBlocks: BlockInfo[] | undefined;
    const { reserved, config } = policy;
    for (const [family, familyPools] of pools) {
      let planned = await this.#fromOwnBlocks(
        host,
        hostRec.blocks,
        family,
        familyPools,
        policy,
        alloc,
        first,
      );
      const limit = config.maxBlocksPerHost;
      const held = hostRec.blocks.length + claimed.length;
      const canClaim = config.autoAllocateBlocks && (limit === 0 || held < limit);
      if (!planned && canClaim) {
        claimedCidrs ??= await this.#claimedCidrs();
        const taken = new Set([...claimedCidrs, ...knownTaken, ...claimed]);
        for (const pool of familyPools) {
          const cidr = findFreeBlock({
            pool: pool.cidr,
            blockPrefix: pool.spec.blockSize,
            taken,
            start: BigInt(hashString(host)),
            reserved,
          });
          if (!cidr) continue;
          const fresh = newBlock(cidr, { affinity: host, sequence: nowMs, now: alloc.now });
          const got = allocateNext(fresh, reserved, alloc);
          if (!got) continue; // cannot happen: findFreeBlock saw an unreserved address
          planned = {
            family,
            key: this.keys.block(fresh.cidr),
            modRevision: 0,
            block: got.block,
            ip: got.ip,
            claim: pool,
          };
          break;
        }
      }
      if (!planned && !config.strictAffinity) {
        allBlocks ??= await this.#borrowableBlocks();
        planned = borrow(allBlocks, host, handle, family, familyPools, reserved, alloc);
      }
      if (!planned) {
        throw exhausted(host, family, familyPools, config, held, hostRec.blocks);
      }
      const cidr = planned.block.cidr;
      if (planned.claim) {
        const affinityKey = this.keys.affinity(host, cidr);
        change
          .expectAbsent(planned.key)
          .expectAbsent(affinityKey)
          .expectRevision(planned.claim.key, planned.claim.modRevision)
          .put(planned.key, planned.block)
          .put(affinityKey, { host, cidr, state: "confirmed" })
          .readBackOnFailure(planned.key);
        claimed.push(cidr);
      } else {
        change.expectRevision(planned.key, planned.modRevision).put(planned.key, planned.block);
        blockKeys.push(planned.key);
      }
      addToHandle(handleRec, cidr, 1);
      ips.set(family, [planned.ip]);
    }
    if (claimed.length > 0) {
      change
        .expect(hostKey, hostEntry)
        .put(hostKey, { host, blocks: [...hostRec.blocks, ...claimed] });
    }
    change.expect(handleKey, handleEntry).put(handleKey, handleRec);
    return { change, ips, claimed, blockKeys };
  }

  /** A free address in one of the host's blocks of `family`, newest block first. */
  async #fromOwnBlocks(
    host: string,
    blocks: readonly string[],
    family: IPFamily,
    pools: readonly PoolInfo[],
    policy: IpamPolicy,
    alloc: NewAllocation,
    cache: ReadCache,
  ): Promise<Planned | undefined> {
    const mine = [...blocks].reverse().filter((text) => {
      const c = parseCIDR(text);
      return c !== undefined && c.family === family && poolOf(pools, c) !== undefined;
    });
    for (let i = 0; i < mine.length; i += OWN_BLOCK_BATCH) {
      const keys = mine.slice(i, i + OWN_BLOCK_BATCH).map((c) => this.keys.block(c));
      const entries = await readKeys(this.#backend, keys, cache);
      for (const key of keys) {
        const entry = entries.get(key);
        if (!entry) continue; // listed but gone: `twill ipam check` reports it
        const block = parseBlock(entry.value, key);
        if (block.affinity !== host) continue;
        const got = allocateNext(block, policy.reserved, alloc);
        if (got) {
          return { family, key, modRevision: entry.modRevision, block: got.block, ip: got.ip };
        }
      }
    }
    return undefined;
  }

  /** Every block CIDR some host has an affinity key for. */
  async #claimedCidrs(): Promise<Set<string>> {
    const { entries } = await this.#backend.list(this.keys.affinities);
    const out = new Set<string>();
    for (const e of entries) {
      const parsed = parseAffinityKey(this.keys, e.key);
      const cidr = parsed ? cidrFromKeySegment(parsed.cidrSegment) : undefined;
      if (cidr) out.add(formatCIDR(cidr));
    }
    return out;
  }

  /**
   * Assigns one given address (e.g. a static IP asked for by the workload).
   * Reservations do not apply (as in Calico: they keep addresses from
   * automatic assignment; asking for one is how a reserved address is
   * used). The block is claimed for `host` if nobody holds it.
   * "AlreadyExists" when the address is in use; "Invalid" when it is in no
   * enabled pool.
   */
  async assignIP(req: AssignIPRequest): Promise<{ ip: string; block: string; warnings: string[] }> {
    const host = requireText("host", req.host);
    const handle = requireText("handle", req.handle);
    const ip = requireIP(req.ip);
    const text = formatIP(ip.family, ip.value);
    const what = `assigning "${text}" to handle "${handle}"`;
    checkAborted(req.signal, what);
    const attributes = attributesOf(req.attributes, host);
    const hostKey = this.keys.host(host);
    const handleKey = this.keys.handle(handle);
    let policy: IpamPolicy | undefined;
    const placed = await withRetries(this.#retry, what, req.signal, async () => {
      // Read (again, after a lost race) the pool: a new block compares its revision.
      policy = await loadPolicy(this.store);
      const holding = policy.pools.filter((p) => cidrContainsIP(p.cidr, ip));
      const pool = holding.find((p) => !p.spec.disabled);
      if (!pool) {
        const first = holding[0];
        throw new TwillError(
          "Invalid",
          first
            ? `cannot assign "${text}": its pool "${first.name}" is disabled`
            : `cannot assign "${text}": it is in no IP pool`,
        );
      }
      const cidr = formatCIDR(blockContaining(ip, pool.spec.blockSize));
      const blockKey = this.keys.block(cidr);
      const affinityKey = this.keys.affinity(host, cidr);
      const { config } = policy;
      const nowMs = this.#now();
      const alloc: NewAllocation = { handle, attributes, now: iso(nowMs) };
      const read = await readKeys(this.#backend, [blockKey, hostKey, handleKey]);
      const blockEntry = read.get(blockKey);
      const hostEntry = read.get(hostKey);
      const handleEntry = read.get(handleKey);
      const change = new ChangeSet();
      let block: BlockRecord;
      if (blockEntry) {
        const current = parseBlock(blockEntry.value, blockKey);
        if (config.strictAffinity && current.affinity !== host) {
          throw new TwillError(
            "Invalid",
            `cannot assign "${text}" on host "${host}": its block "${cidr}" ${current.affinity === null ? "has no host" : `belongs to host "${current.affinity}"`} and strictAffinity is set`,
          );
        }
        const got = assignAddress(current, ip, alloc);
        if ("heldBy" in got) {
          throw new TwillError(
            "AlreadyExists",
            `address "${text}" is already allocated to handle "${got.heldBy.handle}"`,
          );
        }
        block = got.block;
        change.expect(blockKey, blockEntry).put(blockKey, block);
      } else {
        const hostRec = hostEntry ? parseHostRecord(hostEntry) : { host, blocks: [] };
        const limit = config.maxBlocksPerHost;
        const claim = config.autoAllocateBlocks && (limit === 0 || hostRec.blocks.length < limit);
        if (!claim && config.strictAffinity) {
          throw new TwillError(
            "Exhausted",
            `cannot assign "${text}" on host "${host}": its block "${cidr}" is unclaimed, the host may claim no more blocks (${claimLimitText(config, hostRec.blocks.length)}), and strictAffinity forbids a block without a host`,
          );
        }
        const fresh = newBlock(parseCIDR(cidr) as CIDR, {
          affinity: claim ? host : null,
          sequence: nowMs,
          now: alloc.now,
        });
        const got = assignAddress(fresh, ip, alloc);
        if ("heldBy" in got) throw new TwillError("Internal", "a fresh block had an allocation");
        block = got.block;
        change
          .expectAbsent(blockKey)
          .expectRevision(pool.key, pool.modRevision)
          .put(blockKey, block);
        if (claim) {
          change
            .expectAbsent(affinityKey)
            .put(affinityKey, { host, cidr, state: "confirmed" })
            .expect(hostKey, hostEntry)
            .put(hostKey, { host, blocks: [...hostRec.blocks, cidr] });
        }
      }
      const handleRec = handleEntry ? parseHandleRecord(handleEntry) : { handle, blocks: {} };
      addToHandle(handleRec, cidr, 1);
      change.expect(handleKey, handleEntry).put(handleKey, handleRec);
      const result = await change.commit(this.#backend);
      return result.succeeded ? cidr : undefined;
    });
    return { ip: text, block: placed, warnings: policy?.warnings ?? [] };
  }

  /** Releases addresses; with `handle`, only those still held under it. */
  releaseIPs(
    ips: readonly string[],
    options: { handle?: string; signal?: AbortSignal } = {},
  ): Promise<ReleaseResult> {
    const items = ips.map((ip): ReleaseItem =>
      options.handle === undefined ? { ip } : { ip, handle: options.handle },
    );
    return this.releaseAllocations(items, options.signal ? { signal: options.signal } : {});
  }

  /**
   * Releases addresses, each only if it still matches its handle and
   * sequence when given. Addresses of one block are released in one
   * transaction together with their handles' counts; a request spanning
   * more than RELEASE_CHUNK addresses is split into several transactions,
   * each of them complete.
   */
  async releaseAllocations(
    items: readonly ReleaseItem[],
    options: { signal?: AbortSignal } = {},
  ): Promise<ReleaseResult> {
    const result: ReleaseResult = { released: [], notAllocated: [], mismatched: [] };
    const wanted = new Map<string, { ip: IPAddress; item: ReleaseItem }>();
    for (const item of items) {
      const ip = requireIP(item.ip);
      const text = formatIP(ip.family, ip.value);
      if (!wanted.has(text)) wanted.set(text, { ip, item: { ...item, ip: text } });
    }
    if (wanted.size === 0) return result;
    // Find each address's block: one get per possible block size.
    const candidates = new Map<string, string[]>();
    for (const [text, { ip }] of wanted) {
      candidates.set(
        text,
        candidateBlocks(ip).map((c) => this.keys.block(formatCIDR(c))),
      );
    }
    const found = await readKeys(this.#backend, [...candidates.values()].flat());
    const byBlock = new Map<string, ReleaseItem[]>();
    for (const [text, keys] of candidates) {
      const key = keys.find((k) => found.get(k) !== undefined);
      if (!key) {
        result.notAllocated.push(text);
        continue;
      }
      const list = byBlock.get(key) ?? [];
      list.push((wanted.get(text) as { item: ReleaseItem }).item);
      byBlock.set(key, list);
    }
    for (const chunk of releaseChunks(byBlock)) {
      let hint: string[] = [];
      const part = await withRetries(
        this.#retry,
        `releasing ${chunk.reduce((n, [, list]) => n + list.length, 0)} address(es)`,
        options.signal,
        async () => {
          const attempt = await this.#releaseChunk(chunk, hint);
          hint = attempt.handleKeys;
          return attempt.part;
        },
      );
      result.released.push(...part.released);
      result.notAllocated.push(...part.notAllocated);
      result.mismatched.push(...part.mismatched);
    }
    return result;
  }

  async #releaseChunk(
    chunk: readonly (readonly [string, readonly ReleaseItem[]])[],
    hint: readonly string[],
  ): Promise<{ part: ReleaseResult | undefined; handleKeys: string[] }> {
    const now = iso(this.#now());
    const part: ReleaseResult = { released: [], notAllocated: [], mismatched: [] };
    // The handles a previous attempt needed are read with the blocks.
    const blocks = await readKeys(this.#backend, [...chunk.map(([key]) => key), ...hint]);
    const change = new ChangeSet();
    const handleDelta = new Map<string, Map<string, number>>();
    for (const [key, list] of chunk) {
      const entry = blocks.get(key);
      if (!entry) {
        part.notAllocated.push(...list.map((i) => i.ip));
        continue;
      }
      const block = parseBlock(entry.value, key);
      const cidr = blockCIDR(block);
      const requests: ReleaseRequest[] = list.map((item) => {
        const req: ReleaseRequest = { ordinal: ordinalOf(cidr, requireIP(item.ip)) as number };
        if (item.handle !== undefined) req.handle = item.handle;
        if (item.sequence !== undefined) req.sequence = item.sequence;
        return req;
      });
      const { block: next, outcomes } = releaseOrdinals(block, requests, now);
      for (const o of outcomes) {
        const ip = formatIP(cidr.family, cidr.network + BigInt(o.ordinal));
        if (o.status === "notAllocated") part.notAllocated.push(ip);
        else if (o.status === "mismatch") part.mismatched.push({ ip, reason: o.reason });
        else {
          part.released.push({ ip, handle: o.record.handle });
          const d = handleDelta.get(o.record.handle) ?? new Map<string, number>();
          d.set(block.cidr, (d.get(block.cidr) ?? 0) + 1);
          handleDelta.set(o.record.handle, d);
        }
      }
      if (!next) continue;
      change.expect(key, entry);
      if (isEmpty(next) && next.affinity === null) change.delete(key);
      else change.put(key, next);
    }
    const handleKeys = [...handleDelta.keys()].map((h) => this.keys.handle(h));
    if (change.writeCount === 0) return { part, handleKeys };
    const handles = await readKeys(this.#backend, handleKeys, blocks);
    for (const [handle, delta] of handleDelta) {
      const key = this.keys.handle(handle);
      const entry = handles.get(key);
      // A handle with no record has nothing to count down (check reports it).
      if (!entry) continue;
      const rec = parseHandleRecord(entry);
      for (const [cidr, n] of delta) addToHandle(rec, cidr, -n);
      change.expect(key, entry);
      if (Object.keys(rec.blocks).length === 0) change.delete(key);
      else change.put(key, rec);
    }
    const committed = await change.commit(this.#backend);
    return { part: committed.succeeded ? part : undefined, handleKeys };
  }

  /** Releases everything held under `handle`; a handle that holds nothing is not an error. */
  async releaseByHandle(
    handle: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ReleaseResult> {
    requireText("handle", handle);
    const result: ReleaseResult = { released: [], notAllocated: [], mismatched: [] };
    const key = this.keys.handle(handle);
    for (;;) {
      let hint: string[] = [];
      const done = await withRetries(
        this.#retry,
        `releasing handle "${handle}"`,
        options.signal,
        async () => {
          const now = iso(this.#now());
          // The blocks a previous attempt needed are read with the handle.
          const first = await readKeys(this.#backend, [key, ...hint]);
          const handleEntry = first.get(key);
          if (!handleEntry) return { released: [] as ReleaseResult["released"], finished: true };
          const rec = parseHandleRecord(handleEntry);
          const cidrs = Object.keys(rec.blocks).sort();
          const batch = cidrs.slice(0, HANDLE_BLOCK_CHUNK);
          hint = batch.map((c) => this.keys.block(c));
          const entries = await readKeys(this.#backend, hint, first);
          const change = new ChangeSet().expect(key, handleEntry);
          const released: ReleaseResult["released"] = [];
          for (const cidr of batch) {
            const blockKey = this.keys.block(cidr);
            const entry = entries.get(blockKey);
            delete rec.blocks[cidr];
            if (!entry) continue;
            const block = parseBlock(entry.value, blockKey);
            const ordinals = ordinalsOfHandle(block, handle);
            if (ordinals.length === 0) continue;
            const { block: next, outcomes } = releaseOrdinals(
              block,
              ordinals.map((ordinal) => ({ ordinal, handle })),
              now,
            );
            if (!next) continue;
            const c = blockCIDR(block);
            for (const o of outcomes) {
              if (o.status === "released") {
                released.push({ ip: formatIP(c.family, c.network + BigInt(o.ordinal)), handle });
              }
            }
            change.expect(blockKey, entry);
            if (isEmpty(next) && next.affinity === null) change.delete(blockKey);
            else change.put(blockKey, next);
          }
          const finished = Object.keys(rec.blocks).length === 0;
          if (finished) change.delete(key);
          else change.put(key, rec);
          const committed = await change.commit(this.#backend);
          return committed.succeeded ? { released, finished } : undefined;
        },
      );
      result.released.push(...done.released);
      if (done.finished) return result;
    }
  }

  /** The allocation holding `ip`, or undefined when the address is free. */
  async getAllocation(ip: string): Promise<Allocation | undefined> {
    const addr = requireIP(ip);
    const found = await this.#blockOf(addr);
    if (!found) return undefined;
    return allocationAt(found.block, addr);
  }

  /** Everything IPAM knows about one address (for `twill ipam show --ip`). */
  async describeAddress(ip: string): Promise<AddressInfo> {
    const addr = requireIP(ip);
    const [policy, found] = await Promise.all([loadPolicy(this.store), this.#blockOf(addr)]);
    const info: AddressInfo = {
      ip: formatIP(addr.family, addr.value),
      reserved: isReserved(policy.reserved, addr),
    };
    const pool = policy.pools.find((p) => cidrContainsIP(p.cidr, addr));
    if (pool) info.pool = pool.name;
    if (found) {
      info.block = { cidr: found.block.cidr, host: found.block.affinity };
      const allocation = allocationAt(found.block, addr);
      if (allocation) info.allocation = allocation;
    }
    return info;
  }

  async #blockOf(ip: IPAddress): Promise<{ key: string; block: BlockRecord } | undefined> {
    const keys = candidateBlocks(ip).map((c) => this.keys.block(formatCIDR(c)));
    const entries = await readKeys(this.#backend, keys);
    for (const key of keys) {
      const entry = entries.get(key);
      if (entry) return { key, block: parseBlock(entry.value, key) };
    }
    return undefined;
  }

  /** Every block that parses (one corrupt block must not stop borrowing from the others). */
  async #borrowableBlocks(): Promise<BlockInfo[]> {
    const { entries } = await this.#backend.list(this.keys.blocks);
    const out: BlockInfo[] = [];
    for (const e of entries) {
      try {
        out.push({ key: e.key, modRevision: e.modRevision, block: parseBlock(e.value, e.key) });
      } catch {
        // Reported by `twill ipam check`.
      }
    }
    return out;
  }

  /** Every block, in key order; TwillError "Internal" naming the key of a corrupt one. */
  async listBlocks(): Promise<BlockInfo[]> {
    const { entries } = await this.#backend.list(this.keys.blocks);
    return entries.map((e) => ({
      key: e.key,
      modRevision: e.modRevision,
      block: parseBlock(e.value, e.key),
    }));
  }

  /** Addresses in use per pool and per block (for `twill ipam show`). */
  async usage(): Promise<UsageReport> {
    const [policy, blocks] = await Promise.all([loadPolicy(this.store), this.listBlocks()]);
    const pools: PoolUsage[] = policy.pools.map((p) => ({
      name: p.name,
      cidr: p.spec.cidr,
      blockSize: p.spec.blockSize,
      disabled: p.spec.disabled,
      total: cidrSize(p.cidr),
      inUse: 0,
      blocks: 0,
    }));
    const out: BlockUsage[] = [];
    const ordered = blocks
      .map(({ block }) => ({ block, cidr: blockCIDR(block) }))
      .sort((a, b) =>
        a.cidr.family !== b.cidr.family
          ? a.cidr.family - b.cidr.family
          : a.cidr.network < b.cidr.network
            ? -1
            : a.cidr.network > b.cidr.network
              ? 1
              : 0,
      );
    for (const { block } of ordered) {
      const cidr = blockCIDR(block);
      const pool = poolOf(policy.pools, cidr);
      const inUse = allocatedCount(block);
      const usage = pool ? pools.find((u) => u.name === pool.name) : undefined;
      if (usage) {
        usage.inUse += inUse;
        usage.blocks += 1;
      }
      out.push({
        cidr: block.cidr,
        pool: pool?.name ?? null,
        host: block.affinity,
        total: Number(cidrSize(cidr)),
        inUse,
        free: freeCount(block, policy.reserved),
        reserved: Number(reservedCount(policy.reserved, cidr)),
      });
    }
    return { pools, blocks: out };
  }

  /**
   * Releases `host`'s claim on block `cidr`: an empty block is deleted, a
   * block with allocations stays, with no host (its addresses are released
   * one by one later, and the release that empties it deletes it). With
   * `mustBeEmpty`, a block that has allocations is left alone. Returns what
   * happened; "absent" and "notHeld" change nothing.
   */
  async releaseAffinity(
    cidr: string,
    options: { host: string; mustBeEmpty?: boolean; signal?: AbortSignal },
  ): Promise<"deleted" | "unaffined" | "notEmpty" | "absent" | "notHeld"> {
    const c = parseCIDR(cidr);
    if (!c || c.hostBitsSet) throw new TwillError("Invalid", `"${cidr}" is not a block CIDR`);
    const text = formatCIDR(c);
    const { host } = options;
    const blockKey = this.keys.block(text);
    const affinityKey = this.keys.affinity(host, text);
    const hostKey = this.keys.host(host);
    return withRetries(
      this.#retry,
      `releasing block "${text}" of host "${host}"`,
      options.signal,
      async () => {
        const read = await readKeys(this.#backend, [blockKey, affinityKey, hostKey]);
        const blockEntry = read.get(blockKey);
        const affinityEntry = read.get(affinityKey);
        const hostEntry = read.get(hostKey);
        const change = new ChangeSet();
        let outcome: "deleted" | "unaffined" | "absent" | "notHeld" | "notEmpty";
        if (!blockEntry) {
          outcome = "absent";
        } else {
          const block = parseBlock(blockEntry.value, blockKey);
          if (block.affinity !== host) {
            outcome = "notHeld";
          } else if (!isEmpty(block) && options.mustBeEmpty) {
            return "notEmpty";
          } else {
            change.expect(blockKey, blockEntry);
            if (isEmpty(block)) {
              change.delete(blockKey);
              outcome = "deleted";
            } else {
              change.put(blockKey, {
                ...block,
                affinity: null,
                sequence: block.sequence + 1,
                updatedAt: iso(this.#now()),
              });
              outcome = "unaffined";
            }
          }
        }
        // Whatever the block says, the host's own records of it go.
        if (affinityEntry) change.expect(affinityKey, affinityEntry).delete(affinityKey);
        if (hostEntry) {
          const rec = parseHostRecord(hostEntry);
          if (rec.blocks.includes(text)) {
            const rest = rec.blocks.filter((b) => b !== text);
            change.expect(hostKey, hostEntry);
            if (rest.length === 0) change.delete(hostKey);
            else change.put(hostKey, { host, blocks: rest });
          }
        }
        if (change.writeCount === 0) return outcome;
        const committed = await change.commit(this.#backend);
        return committed.succeeded ? outcome : undefined;
      },
    );
  }

  /**
   * Audits IPAM against the WorkloadEndpoints, Nodes and pools: allocations
   * with no endpoint, endpoints with no allocation, blocks with no host, and
   * records that disagree. Read-only.
   */
  check(options: { now?: number } = {}): Promise<IpamReport> {
    return checkIpam(this, options.now ?? this.#now());
  }

  /** Garbage collection (dry run unless `dryRun: false`); see ipam-audit.ts. */
  gc(options: GcOptions): Promise<GcResult> {
    return gcIpam(this, options);
  }
}

function allocationAt(block: BlockRecord, ip: IPAddress): Allocation | undefined {
  const cidr = blockCIDR(block);
  const ordinal = ordinalOf(cidr, ip);
  if (ordinal === undefined) return undefined;
  const record: AllocationRecord | undefined = block.allocations[String(ordinal)];
  if (!record) return undefined;
  return {
    ip: formatIP(ip.family, ip.value),
    block: block.cidr,
    host: block.affinity,
    handle: record.handle,
    sequence: record.sequence,
    allocatedAt: record.allocatedAt,
    attributes: { ...record.attributes },
  };
}

/** A free address in another host's (or no host's) block of an eligible pool. */
function borrow(
  blocks: readonly BlockInfo[],
  host: string,
  handle: string,
  family: IPFamily,
  pools: readonly PoolInfo[],
  reserved: readonly CIDR[],
  alloc: NewAllocation,
): Planned | undefined {
  const candidates = blocks.filter(({ block }) => {
    if (block.affinity === host) return false;
    const cidr = blockCIDR(block);
    return (
      cidr.family === family && poolOf(pools, cidr) !== undefined && freeCount(block, reserved) > 0
    );
  });
  if (candidates.length === 0) return undefined;
  // Spread concurrent borrowers over the candidates instead of all racing for the first.
  const pick = candidates[hashString(`${host}/${handle}`) % candidates.length] as BlockInfo;
  const got = allocateNext(pick.block, reserved, alloc);
  if (!got) return undefined;
  return {
    family,
    key: pick.key,
    modRevision: pick.modRevision,
    block: got.block,
    ip: got.ip,
  };
}

function claimLimitText(config: IpamPolicy["config"], held: number): string {
  if (!config.autoAllocateBlocks) return "autoAllocateBlocks is false";
  return `it holds ${held} and maxBlocksPerHost is ${config.maxBlocksPerHost}`;
}

function exhausted(
  host: string,
  family: IPFamily,
  pools: readonly PoolInfo[],
  config: IpamPolicy["config"],
  held: number,
  hostBlocks: readonly string[],
): TwillError {
  const names = pools.map((p) => `"${p.name}"`).join(", ");
  const own = hostBlocks.filter((b) => {
    const c = parseCIDR(b);
    return c !== undefined && c.family === family && poolOf(pools, c) !== undefined;
  }).length;
  const limited =
    !config.autoAllocateBlocks ||
    (config.maxBlocksPerHost !== 0 && held >= config.maxBlocksPerHost);
  const reasons = [
    own > 0 ? `its ${own} block(s) there are full` : "it holds no block there",
    limited
      ? `it may claim no more blocks (${claimLimitText(config, held)})`
      : "no unclaimed block is left",
    config.strictAffinity
      ? "strictAffinity forbids borrowing from other hosts' blocks"
      : "no other host's block has a free address",
  ];
  return new TwillError(
    "Exhausted",
    `no free IPv${family} address for host "${host}" in pool(s) ${names}: ${reasons.join("; ")}`,
  );
}

function noPoolReason(policy: IpamPolicy, family: IPFamily): string {
  const ofFamily = policy.pools.filter((p) => p.cidr.family === family);
  if (ofFamily.length === 0) return `there is no IPv${family} pool`;
  return `none of ${ofFamily.map((p) => `"${p.name}"`).join(", ")} is enabled for workloads, automatic and selecting its Node labels`;
}

/** Groups of blocks, each group at most RELEASE_CHUNK addresses (a big block's split). */
function releaseChunks(
  byBlock: ReadonlyMap<string, readonly ReleaseItem[]>,
): (readonly [string, readonly ReleaseItem[]])[][] {
  const chunks: (readonly [string, readonly ReleaseItem[]])[][] = [];
  let current: (readonly [string, readonly ReleaseItem[]])[] = [];
  let size = 0;
  for (const [key, items] of byBlock) {
    for (let i = 0; i < items.length; i += RELEASE_CHUNK) {
      const piece = items.slice(i, i + RELEASE_CHUNK);
      if (size + piece.length > RELEASE_CHUNK && current.length > 0) {
        chunks.push(current);
        current = [];
        size = 0;
      }
      current.push([key, piece]);
      size += piece.length;
    }
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
