// Pure arithmetic of IPAM blocks: how a pool splits into blocks, which block
// holds an address, ordinals inside a block, reserved ranges, and the search
// for a block no host has claimed yet. No I/O, no clock (lint enforces it).
//
// A block is an aligned CIDR of the pool's blockSize (default /26 and /122).
// Ordinal n of a block is its network address + n. As in Calico, every
// ordinal can be handed out, the block's first and last address included:
// a block is a unit of routing (one route per block), not a subnet with a
// network and a broadcast address, and workloads get /32 and /128 addresses.
import {
  cidrContains,
  cidrContainsIP,
  familyBits,
  formatCIDR,
  parseCIDR,
  prefixMask,
} from "../api/ip.js";
import type { CIDR, IPAddress, IPFamily } from "../api/ip.js";
import { BLOCK_SIZE_RANGE } from "../api/schemas/ip-pool.js";

/** Number of addresses in a CIDR. */
export function cidrSize(cidr: Pick<CIDR, "family" | "prefixLength">): bigint {
  return 1n << BigInt(familyBits(cidr.family) - cidr.prefixLength);
}

/** A CIDR from family, network and prefix length (host bits of `network` are cleared). */
export function makeCIDR(family: IPFamily, network: bigint, prefixLength: number): CIDR {
  return {
    family,
    network: network & prefixMask(family, prefixLength),
    prefixLength,
    hostBitsSet: false,
  };
}

/** Number of blocks of /blockPrefix in a pool (0 when a block does not fit). */
export function blocksInPool(pool: CIDR, blockPrefix: number): bigint {
  if (blockPrefix < pool.prefixLength || blockPrefix > familyBits(pool.family)) return 0n;
  return 1n << BigInt(blockPrefix - pool.prefixLength);
}

/** The n-th block (from 0) of a pool. */
export function nthBlock(pool: CIDR, blockPrefix: number, n: bigint): CIDR {
  const size = 1n << BigInt(familyBits(pool.family) - blockPrefix);
  return makeCIDR(pool.family, pool.network + n * size, blockPrefix);
}

/** The index of `block` within `pool` (undefined when it is not one of the pool's blocks). */
export function blockIndex(pool: CIDR, block: CIDR): bigint | undefined {
  if (!cidrContains(pool, block)) return undefined;
  const size = cidrSize(block);
  return (block.network - pool.network) / size;
}

/** The block of /blockPrefix that holds `ip`. */
export function blockContaining(ip: IPAddress, blockPrefix: number): CIDR {
  return makeCIDR(ip.family, ip.value, blockPrefix);
}

/**
 * Every block that could hold `ip`, one per valid block size of its family
 * (Calico's ranges: /20-/32 for IPv4, /116-/128 for IPv6). Used to find an
 * address's block without knowing its pool, which may have been deleted.
 */
export function candidateBlocks(ip: IPAddress): CIDR[] {
  const range = BLOCK_SIZE_RANGE[ip.family];
  const out: CIDR[] = [];
  for (let p = range.min; p <= range.max; p++) out.push(blockContaining(ip, p));
  return out;
}

/** The ordinal of `ip` in `block`; undefined when the address lies outside it. */
export function ordinalOf(block: CIDR, ip: IPAddress): number | undefined {
  if (!cidrContainsIP(block, ip)) return undefined;
  return Number(ip.value - block.network);
}

/** The address at `ordinal` in `block`. */
export function addressAt(block: CIDR, ordinal: number): IPAddress {
  return { family: block.family, value: block.network + BigInt(ordinal) };
}

/**
 * A datastore key segment for a CIDR: "/" becomes "-", so the key has no
 * extra level ("10.65.0.0/26" → "10.65.0.0-26", "fd00::/122" → "fd00::-122").
 */
export function cidrKeySegment(cidr: string): string {
  return cidr.replace("/", "-");
}

/** The CIDR a key segment stands for, or undefined when it is not one. */
export function cidrFromKeySegment(segment: string): CIDR | undefined {
  const dash = segment.lastIndexOf("-");
  if (dash < 0) return undefined;
  const cidr = parseCIDR(`${segment.slice(0, dash)}/${segment.slice(dash + 1)}`);
  return cidr && !cidr.hostBitsSet ? cidr : undefined;
}

/** The reserved ranges (of the same family) that share an address with `block`. */
export function reservationsIn(reserved: readonly CIDR[], block: CIDR): CIDR[] {
  return reserved.filter(
    (r) => r.family === block.family && (cidrContains(r, block) || cidrContains(block, r)),
  );
}

/** True when `ip` lies in one of the reserved ranges. */
export function isReserved(reserved: readonly CIDR[], ip: IPAddress): boolean {
  return reserved.some((r) => cidrContainsIP(r, ip));
}

/** Number of addresses of `block` covered by the reserved ranges (overlaps counted once). */
export function reservedCount(reserved: readonly CIDR[], block: CIDR): bigint {
  const spans = reservationsIn(reserved, block)
    .map((r) => {
      const inner = cidrContains(block, r) ? r : block;
      return { start: inner.network, end: inner.network + cidrSize(inner) };
    })
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let total = 0n;
  let coveredTo = block.network;
  for (const s of spans) {
    const start = s.start > coveredTo ? s.start : coveredTo;
    if (s.end > start) {
      total += s.end - start;
      coveredTo = s.end;
    }
  }
  return total;
}

export interface FindFreeBlockOptions {
  pool: CIDR;
  blockPrefix: number;
  /** Canonical CIDR text of every block that exists or is claimed. */
  taken: ReadonlySet<string>;
  /** Where the search starts (taken modulo the pool's block count). */
  start: bigint;
  reserved: readonly CIDR[];
}

/**
 * The first block of the pool, from `start` on and wrapping around, that is
 * not taken and has at least one address outside the reservations; or
 * undefined when there is none. A reservation covering many blocks is
 * stepped over in one move, so the cost is bounded by the number of taken
 * blocks and reservations, not by the size of the pool (an IPv6 /48 holds
 * 2^74 blocks of /122).
 */
export function findFreeBlock(options: FindFreeBlockOptions): CIDR | undefined {
  const { pool, blockPrefix, taken, reserved } = options;
  const count = blocksInPool(pool, blockPrefix);
  if (count === 0n) return undefined;
  const inPool = reservationsIn(reserved, pool);
  if (inPool.some((r) => cidrContains(r, pool))) return undefined;
  const blockSize = 1n << BigInt(familyBits(pool.family) - blockPrefix);
  let index = ((options.start % count) + count) % count;
  let visited = 0n;
  while (visited < count) {
    const block = nthBlock(pool, blockPrefix, index);
    // A reservation at least as large as the block that contains it: skip
    // to the first block after the reservation.
    const cover = inPool.find((r) => cidrContains(r, block));
    if (cover) {
      const end = cover.network + cidrSize(cover);
      const next = (end - pool.network) / blockSize;
      const step = next - index;
      visited += step;
      index = next % count;
      continue;
    }
    if (!taken.has(formatCIDR(block)) && reservedCount(inPool, block) < blockSize) return block;
    visited += 1n;
    index = (index + 1n) % count;
  }
  return undefined;
}

/**
 * A stable 32-bit hash (FNV-1a over UTF-16 code units). Hosts start their
 * block search at different places of a pool, so two hosts claiming at the
 * same moment rarely want the same block; the same host always starts at
 * the same place.
 */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
