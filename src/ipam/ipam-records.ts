// The small IPAM values besides blocks (see ipam-keys.ts for where they
// live): a host's list of blocks, a handle's per-block counts, a block
// affinity and a leak observation. Parsers check the shape and name the key
// of anything corrupt (TwillError "Internal").
import type { KvEntry } from "../datastore/backend.js";
import { TwillError } from "../util/errors.js";
import { parseJson } from "./ipam-txn.js";

export interface HostRecord {
  host: string;
  /** Block CIDRs the host holds, oldest claim first. */
  blocks: string[];
}

export interface HandleRecord {
  handle: string;
  /** Addresses held under the handle, per block CIDR. */
  blocks: Record<string, number>;
}

export interface AffinityRecord {
  host: string;
  cidr: string;
  /**
   * Calico's two-phase claim state. twill writes the block and its affinity
   * in one transaction, so an affinity is born "confirmed"; a "pending" one
   * (imported from elsewhere) is treated as absent, as Calico does.
   */
  state: "confirmed" | "pending";
}

export interface LeakRecord {
  ip: string;
  handle: string;
  /** The allocation's sequence: a new allocation of the address is a new leak. */
  sequence: number;
  /** RFC 3339: when `gc` first saw the allocation with no endpoint. */
  firstSeen: string;
}

function corrupt(entry: KvEntry, what: string): TwillError {
  return new TwillError("Internal", `IPAM ${what} at "${entry.key}" is corrupt`);
}

function object(entry: KvEntry, what: string): Record<string, unknown> {
  const v = parseJson(entry);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw corrupt(entry, what);
  return v as Record<string, unknown>;
}

export function parseHostRecord(entry: KvEntry): HostRecord {
  const v = object(entry, "host record");
  const blocks = v["blocks"];
  if (
    typeof v["host"] !== "string" ||
    !Array.isArray(blocks) ||
    !blocks.every((b) => typeof b === "string")
  ) {
    throw corrupt(entry, "host record");
  }
  return { host: v["host"], blocks: [...(blocks as string[])] };
}

export function parseHandleRecord(entry: KvEntry): HandleRecord {
  const v = object(entry, "handle");
  const blocks = v["blocks"];
  if (
    typeof v["handle"] !== "string" ||
    typeof blocks !== "object" ||
    blocks === null ||
    Array.isArray(blocks) ||
    !Object.values(blocks).every((n) => Number.isInteger(n) && (n as number) > 0)
  ) {
    throw corrupt(entry, "handle");
  }
  return { handle: v["handle"], blocks: { ...(blocks as Record<string, number>) } };
}

export function parseAffinityRecord(entry: KvEntry): AffinityRecord {
  const v = object(entry, "affinity");
  const state = v["state"];
  if (
    typeof v["host"] !== "string" ||
    typeof v["cidr"] !== "string" ||
    (state !== "confirmed" && state !== "pending")
  ) {
    throw corrupt(entry, "affinity");
  }
  return { host: v["host"], cidr: v["cidr"], state };
}

export function parseLeakRecord(entry: KvEntry): LeakRecord {
  const v = object(entry, "leak record");
  if (
    typeof v["ip"] !== "string" ||
    typeof v["handle"] !== "string" ||
    typeof v["sequence"] !== "number" ||
    typeof v["firstSeen"] !== "string"
  ) {
    throw corrupt(entry, "leak record");
  }
  return { ip: v["ip"], handle: v["handle"], sequence: v["sequence"], firstSeen: v["firstSeen"] };
}
