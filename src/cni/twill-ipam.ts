// twill's IPAM as the CNI plugin uses it, in-process: the main plugin calls
// these directly (no second process), and the IPAM-only plugin
// (`"ipam": {"type": "twill-ipam"}` under another plugin) wraps them.
//
// Addresses are held under the handle "<network name>.<container id>" with
// attributes {node, namespace, pod, containerID, workloadEndpoint}, which
// `twill ipam check` and `gc` rely on. Every operation releases only what
// this attachment holds: a failed ADD gives back exactly the addresses it
// took, never those of an earlier ADD under the same handle.
import { parseIP } from "../api/ip.js";
import { allocationsOf } from "../ipam/block-record.js";
import type { Ipam, IpamAttributes } from "../ipam/ipam.js";
import { loadPolicy } from "../ipam/ipam-policy.js";
import { CNI_ERROR, CniError } from "./cni-error.js";
import type { IpamSettings } from "./cni-config.js";
import type { WorkloadAddresses } from "./netlink.js";

export interface AssignRequest {
  node: string;
  handle: string;
  attributes: IpamAttributes;
  settings: IpamSettings;
  /** Specific addresses asked for (runtimeConfig.ips, args.cni.ips, CNI_ARGS IP). */
  requested: readonly string[];
}

export interface AssignResult extends WorkloadAddresses {
  warnings: string[];
}

/** One IPv4 and/or one IPv6 address for the attachment. */
export async function assignAddresses(ipam: Ipam, req: AssignRequest): Promise<AssignResult> {
  if (req.requested.length === 0) {
    const got = await ipam.autoAssign({
      host: req.node,
      handle: req.handle,
      attributes: req.attributes,
      num4: req.settings.assignIPv4 ? 1 : 0,
      num6: req.settings.assignIPv6 ? 1 : 0,
      pools4: req.settings.ipv4Pools,
      pools6: req.settings.ipv6Pools,
    });
    const out: AssignResult = { warnings: got.warnings };
    if (got.ipv4[0] !== undefined) out.ipv4 = got.ipv4[0];
    if (got.ipv6[0] !== undefined) out.ipv6 = got.ipv6[0];
    return out;
  }
  const byFamily = new Map<4 | 6, string>();
  for (const text of req.requested) {
    const ip = parseIP(text);
    if (!ip)
      throw new CniError(
        CNI_ERROR.invalidConfig,
        "invalid address requested",
        `"${text}" is not an IP address`,
      );
    if (byFamily.has(ip.family)) {
      throw new CniError(
        CNI_ERROR.invalidConfig,
        "invalid address requested",
        `more than one IPv${ip.family} address requested (${req.requested.join(", ")}): an endpoint has one per family`,
      );
    }
    byFamily.set(ip.family, text);
  }
  const out: AssignResult = { warnings: [] };
  try {
    for (const [family, ip] of byFamily) {
      const got = await ipam.assignIP({
        ip,
        host: req.node,
        handle: req.handle,
        attributes: req.attributes,
      });
      out.warnings.push(...got.warnings);
      if (family === 4) out.ipv4 = ip;
      else out.ipv6 = ip;
    }
  } catch (err) {
    await releaseAddresses(ipam, req.handle, out).catch(() => undefined);
    throw err;
  }
  return out;
}

/** Releases `addresses` if still held under `handle`. */
export async function releaseAddresses(
  ipam: Ipam,
  handle: string,
  addresses: WorkloadAddresses,
): Promise<void> {
  const ips = [addresses.ipv4, addresses.ipv6].filter((ip): ip is string => ip !== undefined);
  if (ips.length > 0) await ipam.releaseIPs(ips, { handle });
}

/** What differs between the addresses `handle` should hold and what IPAM says. */
export async function checkAddresses(
  ipam: Ipam,
  handle: string,
  ips: readonly string[],
): Promise<string[]> {
  const problems: string[] = [];
  for (const ip of ips) {
    const allocation = await ipam.getAllocation(ip);
    if (!allocation) problems.push(`address ${ip} is not allocated in IPAM`);
    else if (allocation.handle !== handle) {
      problems.push(`address ${ip} is allocated to handle "${allocation.handle}", not "${handle}"`);
    }
  }
  return problems;
}

/** An allocation of this network on this node whose container is no longer valid. */
export interface StaleAllocation {
  ip: string;
  handle: string;
  containerID: string;
  namespace?: string;
  workloadEndpoint?: string;
}

/**
 * Allocations made by the network `networkName` on `node` whose container
 * is not in `validContainers` (GC). Only this node's: another host's runtime
 * knows nothing of its attachments.
 */
export async function staleAllocations(
  ipam: Ipam,
  networkName: string,
  node: string,
  validContainers: ReadonlySet<string>,
): Promise<StaleAllocation[]> {
  const prefix = `${networkName}.`;
  const out: StaleAllocation[] = [];
  for (const { block } of await ipam.listBlocks()) {
    for (const { ip, record } of allocationsOf(block)) {
      if (!record.handle.startsWith(prefix)) continue;
      const containerID = record.handle.slice(prefix.length);
      if (validContainers.has(containerID)) continue;
      if ((record.attributes["node"] ?? block.affinity) !== node) continue;
      const stale: StaleAllocation = { ip, handle: record.handle, containerID };
      const ns = record.attributes["namespace"];
      const wep = record.attributes["workloadEndpoint"];
      if (ns !== undefined) stale.namespace = ns;
      if (wep !== undefined) stale.workloadEndpoint = wep;
      out.push(stale);
    }
  }
  return out;
}

/** STATUS: undefined when ADD can be served, else why not. */
export async function ipamUnavailableReason(
  ipam: Ipam,
  settings: IpamSettings,
): Promise<string | undefined> {
  const policy = await loadPolicy(ipam.store);
  const usable = policy.pools.filter((p) => !p.spec.disabled);
  const families: (4 | 6)[] = [];
  if (settings.assignIPv4) families.push(4);
  if (settings.assignIPv6) families.push(6);
  for (const family of families) {
    if (!usable.some((p) => p.cidr.family === family)) {
      return `no enabled IPv${family} pool exists (${policy.pools.length} pool(s) in all)`;
    }
  }
  return undefined;
}
