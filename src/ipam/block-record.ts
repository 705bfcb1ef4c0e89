// One IPAM block as stored under /twill/v1/ipam/blocks/<cidr>, and the pure
// operations on it: allocate, assign a given address, release. Every
// operation returns a new record and leaves its input untouched, so a
// caller whose transaction fails simply throws the new record away.
//
// Stored JSON:
//   {
//     "cidr": "10.65.0.0/26",
//     "affinity": "host-1",            // the host that claimed it; null when none
//     "sequence": 1712345678123,       // bumped by every write of the block
//     "updatedAt": "2024-...Z",        // time of the last write
//     "unallocated": [5, 6, ..., 63, 2],   // free ordinals, a FIFO
//     "allocations": { "0": { "handle": "k8s-pod-network.4f2c...", "sequence": 1712345678124,
//                             "allocatedAt": "2024-...Z",
//                             "attributes": { "node": "host-1", "namespace": "shop", ... } } }
//   }
//
// Invariants (parseBlock checks them): every ordinal 0..size-1 is either in
// `unallocated` (once) or a key of `allocations`, never both.
//
// Free ordinals are a FIFO as in Calico: allocation takes the first
// unreserved one from the front, release appends to the back, so a freed
// address is the last to be handed out again (stale ARP entries, conntrack
// state and DNS answers for it have the longest time to expire).
// Each allocation records the block's sequence number at the time: a release
// that names a sequence (from a `twill ipam check` report) frees the address
// only if it still holds that allocation and not a later one.
import { formatCIDR, formatIP, parseCIDR } from "../api/ip.js";
import type { CIDR, IPAddress } from "../api/ip.js";
import { TwillError } from "../util/errors.js";
import { addressAt, cidrSize, isReserved, ordinalOf, reservationsIn } from "./block-math.js";

/** What the caller records with an allocation (the CNI plugin: see ipam.ts). */
export type AllocationAttributes = Record<string, string>;

export interface AllocationRecord {
  handle: string;
  /** The block's sequence number when this allocation was made. */
  sequence: number;
  /** RFC 3339. */
  allocatedAt: string;
  attributes: AllocationAttributes;
}

export interface BlockRecord {
  cidr: string;
  affinity: string | null;
  sequence: number;
  updatedAt: string;
  unallocated: number[];
  allocations: Record<string, AllocationRecord>;
}

/** Largest block we accept (a /20 or /116 holds 4096 addresses). */
const MAX_BLOCK_ADDRESSES = 4096n;

/** A fresh block: every ordinal free, in order. */
export function newBlock(
  cidr: CIDR,
  options: { affinity: string | null; sequence: number; now: string },
): BlockRecord {
  const size = cidrSize(cidr);
  if (size > MAX_BLOCK_ADDRESSES) {
    throw new TwillError(
      "Invalid",
      `block "${formatCIDR(cidr)}" holds ${size} addresses: at most ${MAX_BLOCK_ADDRESSES} are allowed`,
    );
  }
  return {
    cidr: formatCIDR(cidr),
    affinity: options.affinity,
    sequence: options.sequence,
    updatedAt: options.now,
    unallocated: Array.from({ length: Number(size) }, (_, i) => i),
    allocations: {},
  };
}

function corrupt(key: string, why: string): TwillError {
  return new TwillError("Internal", `IPAM block at "${key}" is corrupt: ${why}`);
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === "string")
  );
}

/** Parses and checks a stored block; TwillError "Internal" naming the key when it is not one. */
export function parseBlock(text: string, key: string): BlockRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TwillError("Internal", `IPAM block at "${key}" is not JSON`, { cause: err });
  }
  if (typeof raw !== "object" || raw === null) throw corrupt(key, "not an object");
  const b = raw as Record<string, unknown>;
  const cidr = typeof b["cidr"] === "string" ? parseCIDR(b["cidr"]) : undefined;
  if (!cidr || cidr.hostBitsSet) throw corrupt(key, `bad cidr ${JSON.stringify(b["cidr"])}`);
  const size = cidrSize(cidr);
  if (size > MAX_BLOCK_ADDRESSES) throw corrupt(key, `block of ${size} addresses is too large`);
  const affinity = b["affinity"];
  if (affinity !== null && typeof affinity !== "string") throw corrupt(key, "bad affinity");
  const sequence = b["sequence"];
  if (typeof sequence !== "number" || !Number.isSafeInteger(sequence)) {
    throw corrupt(key, "bad sequence");
  }
  const updatedAt = typeof b["updatedAt"] === "string" ? b["updatedAt"] : "";
  const unallocated = b["unallocated"];
  const allocations = b["allocations"];
  if (!Array.isArray(unallocated)) throw corrupt(key, "unallocated is not a list");
  if (typeof allocations !== "object" || allocations === null || Array.isArray(allocations)) {
    throw corrupt(key, "allocations is not an object");
  }
  const n = Number(size);
  const seen = new Uint8Array(n);
  for (const o of unallocated) {
    if (!Number.isInteger(o) || o < 0 || o >= n) throw corrupt(key, `bad free ordinal ${o}`);
    if (seen[o]) throw corrupt(key, `ordinal ${o} is listed twice`);
    seen[o] = 1;
  }
  const allocs: Record<string, AllocationRecord> = {};
  for (const [k, v] of Object.entries(allocations as Record<string, unknown>)) {
    const o = Number(k);
    if (!/^\d+$/.test(k) || o >= n) throw corrupt(key, `bad allocated ordinal "${k}"`);
    if (seen[o]) throw corrupt(key, `ordinal ${o} is both free and allocated`);
    seen[o] = 1;
    const a = v as Record<string, unknown> | null;
    if (
      typeof a !== "object" ||
      a === null ||
      typeof a["handle"] !== "string" ||
      typeof a["sequence"] !== "number" ||
      typeof a["allocatedAt"] !== "string" ||
      !isStringRecord(a["attributes"])
    ) {
      throw corrupt(key, `bad allocation at ordinal ${o}`);
    }
    allocs[k] = {
      handle: a["handle"],
      sequence: a["sequence"],
      allocatedAt: a["allocatedAt"],
      attributes: { ...a["attributes"] },
    };
  }
  if (seen.some((x) => x === 0)) throw corrupt(key, "some ordinals are neither free nor allocated");
  return {
    cidr: formatCIDR(cidr),
    affinity,
    sequence,
    updatedAt,
    unallocated: [...(unallocated as number[])],
    allocations: allocs,
  };
}

/** The block's CIDR, parsed. */
export function blockCIDR(block: BlockRecord): CIDR {
  return parseCIDR(block.cidr) as CIDR;
}

export function allocatedCount(block: BlockRecord): number {
  return Object.keys(block.allocations).length;
}

export function isEmpty(block: BlockRecord): boolean {
  return allocatedCount(block) === 0;
}

/** Free ordinals that are not reserved, i.e. what auto-assignment could hand out. */
export function freeCount(block: BlockRecord, reserved: readonly CIDR[]): number {
  const cidr = blockCIDR(block);
  const inBlock = reservationsIn(reserved, cidr);
  if (inBlock.length === 0) return block.unallocated.length;
  return block.unallocated.filter((o) => !isReserved(inBlock, addressAt(cidr, o))).length;
}

/** Every allocated address of the block with its record, in ordinal order. */
export function allocationsOf(
  block: BlockRecord,
): { ordinal: number; ip: string; record: AllocationRecord }[] {
  const cidr = blockCIDR(block);
  return Object.entries(block.allocations)
    .map(([k, record]) => ({ ordinal: Number(k), record }))
    .sort((a, b) => a.ordinal - b.ordinal)
    .map(({ ordinal, record }) => ({
      ordinal,
      ip: formatIP(cidr.family, addressAt(cidr, ordinal).value),
      record,
    }));
}

export interface NewAllocation {
  handle: string;
  attributes: AllocationAttributes;
  /** RFC 3339, for allocatedAt and updatedAt. */
  now: string;
}

function touched(block: BlockRecord, now: string): BlockRecord {
  return {
    ...block,
    sequence: block.sequence + 1,
    updatedAt: now,
    unallocated: [...block.unallocated],
    allocations: { ...block.allocations },
  };
}

/**
 * Takes the first free, unreserved ordinal from the front of the FIFO.
 * Undefined when the block has none.
 */
export function allocateNext(
  block: BlockRecord,
  reserved: readonly CIDR[],
  alloc: NewAllocation,
): { block: BlockRecord; ip: string } | undefined {
  const cidr = blockCIDR(block);
  const inBlock = reservationsIn(reserved, cidr);
  const at = block.unallocated.findIndex(
    (o) => inBlock.length === 0 || !isReserved(inBlock, addressAt(cidr, o)),
  );
  if (at < 0) return undefined;
  const ordinal = block.unallocated[at] as number;
  const next = touched(block, alloc.now);
  next.unallocated.splice(at, 1);
  next.allocations[String(ordinal)] = {
    handle: alloc.handle,
    sequence: next.sequence,
    allocatedAt: alloc.now,
    attributes: { ...alloc.attributes },
  };
  return { block: next, ip: formatIP(cidr.family, addressAt(cidr, ordinal).value) };
}

/**
 * Assigns one given address. Reservations are not consulted: they keep
 * addresses from automatic assignment only (as in Calico), and asking for
 * one by name is how a reserved address gets used. Returns the handle of
 * the current holder instead when the address is taken.
 */
export function assignAddress(
  block: BlockRecord,
  ip: IPAddress,
  alloc: NewAllocation,
): { block: BlockRecord } | { heldBy: AllocationRecord } {
  const cidr = blockCIDR(block);
  const ordinal = ordinalOf(cidr, ip);
  if (ordinal === undefined) {
    throw new TwillError(
      "Internal",
      `address "${formatIP(ip.family, ip.value)}" is not in block "${block.cidr}"`,
    );
  }
  const held = block.allocations[String(ordinal)];
  if (held) return { heldBy: held };
  const next = touched(block, alloc.now);
  next.unallocated = next.unallocated.filter((o) => o !== ordinal);
  next.allocations[String(ordinal)] = {
    handle: alloc.handle,
    sequence: next.sequence,
    allocatedAt: alloc.now,
    attributes: { ...alloc.attributes },
  };
  return { block: next };
}

export interface ReleaseRequest {
  ordinal: number;
  /** Release only if the address is held under this handle. */
  handle?: string;
  /** Release only if the address still holds the allocation made at this sequence. */
  sequence?: number;
}

export type ReleaseOutcome =
  | { status: "released"; ordinal: number; record: AllocationRecord }
  | { status: "notAllocated"; ordinal: number }
  | { status: "mismatch"; ordinal: number; record: AllocationRecord; reason: string };

/**
 * Frees the requested ordinals whose handle and sequence match. The new
 * block is undefined when nothing changed.
 */
export function releaseOrdinals(
  block: BlockRecord,
  requests: readonly ReleaseRequest[],
  now: string,
): { block: BlockRecord | undefined; outcomes: ReleaseOutcome[] } {
  const outcomes: ReleaseOutcome[] = [];
  let next: BlockRecord | undefined;
  const done = new Set<number>();
  for (const req of requests) {
    if (done.has(req.ordinal)) continue;
    done.add(req.ordinal);
    const record = (next ?? block).allocations[String(req.ordinal)];
    if (!record) {
      outcomes.push({ status: "notAllocated", ordinal: req.ordinal });
      continue;
    }
    if (req.handle !== undefined && record.handle !== req.handle) {
      outcomes.push({
        status: "mismatch",
        ordinal: req.ordinal,
        record,
        reason: `held by handle "${record.handle}", not "${req.handle}"`,
      });
      continue;
    }
    if (req.sequence !== undefined && record.sequence !== req.sequence) {
      outcomes.push({
        status: "mismatch",
        ordinal: req.ordinal,
        record,
        reason: `reallocated since (sequence ${record.sequence}, not ${req.sequence})`,
      });
      continue;
    }
    next ??= touched(block, now);
    delete next.allocations[String(req.ordinal)];
    next.unallocated.push(req.ordinal);
    outcomes.push({ status: "released", ordinal: req.ordinal, record });
  }
  return { block: next, outcomes };
}

/** Ordinals held under `handle`, in ordinal order. */
export function ordinalsOfHandle(block: BlockRecord, handle: string): number[] {
  return Object.entries(block.allocations)
    .filter(([, r]) => r.handle === handle)
    .map(([k]) => Number(k))
    .sort((a, b) => a - b);
}
