// What IPAM reads from the resources before it touches any block: the pools
// (with their defaults filled in), the reserved ranges, the one
// IPAMConfiguration and a host's Node labels. These are read once per
// operation and not compared in its transaction; see docs/ipam.md
// ("Consistency") for why that is safe.
import { cidrContains, formatCIDR, parseCIDR } from "../api/ip.js";
import type { CIDR, IPFamily } from "../api/ip.js";
import { kindById } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { ipPoolSpecSchema } from "../api/schemas/ip-pool.js";
import type { IPPoolSpec } from "../api/schemas/ip-pool.js";
import { ipReservationSpecSchema } from "../api/schemas/ip-reservation.js";
import { ipamConfigurationSpecSchema } from "../api/schemas/ipam-configuration.js";
import type { IPAMConfigurationSpec } from "../api/schemas/ipam-configuration.js";
import { readMany } from "../datastore/backend.js";
import type { ReadManyRequest, ReadManyResult } from "../datastore/backend.js";
import { decodeResource } from "../datastore/resource-store.js";
import type { ResourceStore } from "../datastore/resource-store.js";
import { parseSelector } from "../selector/index.js";
import type { Selector } from "../selector/index.js";
import { TwillError } from "../util/errors.js";

export const IP_POOL = kindById("IPPool");
export const IP_RESERVATION = kindById("IPReservation");
export const IPAM_CONFIGURATION = kindById("IPAMConfiguration");
export const NODE = kindById("Node");
export const WORKLOAD_ENDPOINT = kindById("WorkloadEndpoint");

export interface PoolInfo {
  name: string;
  /** The pool's datastore key and the revision it was read at (claims compare it). */
  key: string;
  modRevision: number;
  cidr: CIDR;
  spec: IPPoolSpec;
  selector: Selector;
}

export interface IpamPolicy {
  config: Pick<IPAMConfigurationSpec, "strictAffinity" | "maxBlocksPerHost" | "autoAllocateBlocks">;
  /** Every valid pool, sorted by name. */
  pools: PoolInfo[];
  /** Every reserved range of every IPReservation. */
  reserved: CIDR[];
  /** Stored resources that were skipped, and why. */
  warnings: string[];
}

function revisionOf(res: Resource): number {
  return Number(res.metadata.resourceVersion ?? 0);
}

function issuesText(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${["spec", ...i.path.map(String)].join(".")}: ${i.message}`).join("; ");
}

/** The IPAM policy as stored now: one request where the backend can (readMany). */
export async function loadPolicy(store: ResourceStore): Promise<IpamPolicy> {
  return policyFromSnapshot(store, await readMany(store.backend, policyReads(store)));
}

/** What loadPolicy reads; add it to a readMany to read the policy together with other keys. */
export function policyReads(store: ResourceStore): ReadManyRequest {
  return {
    keys: [store.key(IPAM_CONFIGURATION, "default")],
    prefixes: [store.kindPrefix(IP_POOL), store.kindPrefix(IP_RESERVATION)],
  };
}

/** The policy from a readMany result that covered policyReads(store). */
export function policyFromSnapshot(store: ResourceStore, snapshot: ReadManyResult): IpamPolicy {
  const listed = (kind: KindInfo): Resource[] =>
    (snapshot.lists.get(store.kindPrefix(kind)) ?? []).map(decodeResource);
  const config = snapshot.gets.get(store.key(IPAM_CONFIGURATION, "default"));
  return policyFrom(
    store,
    listed(IP_POOL),
    listed(IP_RESERVATION),
    config && decodeResource(config),
  );
}

/** The policy from the stored pools, reservations and IPAMConfiguration "default" (if any). */
function policyFrom(
  store: ResourceStore,
  pools: readonly Resource[],
  reservations: readonly Resource[],
  config: Resource | undefined,
): IpamPolicy {
  const warnings: string[] = [];
  const out: PoolInfo[] = [];
  for (const res of pools) {
    const parsed = ipPoolSpecSchema.safeParse(res.spec ?? {});
    if (!parsed.success) {
      warnings.push(
        `ippool "${res.metadata.name}" is invalid and was skipped: ${issuesText(parsed.error.issues)}`,
      );
      continue;
    }
    const spec = parsed.data;
    out.push({
      name: res.metadata.name,
      key: store.key(IP_POOL, res.metadata.name),
      modRevision: revisionOf(res),
      cidr: parseCIDR(spec.cidr) as CIDR,
      spec,
      selector: parseSelector(spec.nodeSelector),
    });
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const reserved: CIDR[] = [];
  for (const res of reservations) {
    const parsed = ipReservationSpecSchema.safeParse(res.spec ?? {});
    if (!parsed.success) {
      warnings.push(
        `ipreservation "${res.metadata.name}" is invalid and was skipped: ${issuesText(parsed.error.issues)}`,
      );
      continue;
    }
    for (const text of parsed.data.reservedCIDRs ?? []) {
      const c = parseCIDR(text, { allowBareIP: true });
      if (c) reserved.push({ ...c, hostBitsSet: false });
    }
  }
  let spec: IPAMConfigurationSpec;
  const parsedConfig = ipamConfigurationSpecSchema.safeParse(config?.spec ?? {});
  if (parsedConfig.success) {
    spec = parsedConfig.data;
  } else {
    warnings.push(
      `ipamconfiguration "default" is invalid, defaults are used: ${issuesText(parsedConfig.error.issues)}`,
    );
    spec = ipamConfigurationSpecSchema.parse({});
  }
  return {
    config: {
      strictAffinity: spec.strictAffinity,
      maxBlocksPerHost: spec.maxBlocksPerHost,
      autoAllocateBlocks: spec.autoAllocateBlocks,
    },
    pools: out,
    reserved,
    warnings,
  };
}

/** A host's Node labels from its Node resource as read; {} with a warning when there is none. */
export function nodeLabelsFrom(
  node: Resource | undefined,
  host: string,
): { labels: Record<string, string>; warnings: string[] } {
  if (node) return { labels: { ...(node.metadata.labels ?? {}) }, warnings: [] };
  return {
    labels: {},
    warnings: [
      `node "${host}" has no Node resource: pool nodeSelectors are matched against no labels`,
    ],
  };
}

/**
 * The pools a host may take addresses of one family from, in name order:
 * enabled, for workloads, selecting the host's labels, and (when `wanted`
 * names pools, by name or CIDR) one of those; a Manual pool only when named.
 * A named pool that does not exist is "NotFound"; one that exists but may
 * not be used is "Invalid", naming the reason.
 */
export function eligiblePools(
  policy: IpamPolicy,
  family: IPFamily,
  labels: Readonly<Record<string, string>>,
  wanted: readonly string[] | undefined,
): PoolInfo[] {
  const ofFamily = policy.pools.filter((p) => p.cidr.family === family);
  if (wanted && wanted.length > 0) {
    const out: PoolInfo[] = [];
    for (const w of wanted) {
      const c = parseCIDR(w);
      const canonical = c ? formatCIDR(c) : undefined;
      const pool = policy.pools.find((p) => p.name === w || p.spec.cidr === canonical);
      if (!pool) throw new TwillError("NotFound", `IP pool "${w}" does not exist`);
      if (pool.cidr.family !== family) {
        throw new TwillError("Invalid", `IP pool "${w}" is not an IPv${family} pool`);
      }
      const why = unusable(pool, labels);
      if (why) throw new TwillError("Invalid", `IP pool "${w}" cannot be used: ${why}`);
      if (!out.includes(pool)) out.push(pool);
    }
    return out;
  }
  return ofFamily.filter((p) => !unusable(p, labels) && p.spec.assignmentMode !== "Manual");
}

function unusable(pool: PoolInfo, labels: Readonly<Record<string, string>>): string | undefined {
  if (pool.spec.disabled) return "it is disabled";
  if (!pool.spec.allowedUses.includes("Workload")) {
    return `its allowedUses (${pool.spec.allowedUses.join(", ")}) do not include Workload`;
  }
  if (!pool.selector.matches(labels)) {
    return `its nodeSelector "${pool.spec.nodeSelector}" does not match the host's labels`;
  }
  return undefined;
}

/** The pool whose range holds `cidr` (a block or a /32), if any. */
export function poolOf(pools: readonly PoolInfo[], cidr: CIDR): PoolInfo | undefined {
  return pools.find((p) => cidrContains(p.cidr, cidr));
}
