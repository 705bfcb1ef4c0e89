// The IPAM key layout under the datastore prefix (default /twill/v1):
//
//   <prefix>/ipam/blocks/<cidr>            one block: its allocations (block-record.ts)
//   <prefix>/ipam/affinity/<host>/<cidr>   a host's claim on a block:
//                                          {"host","cidr","state":"confirmed"}
//   <prefix>/ipam/hosts/<host>             the blocks a host holds, in claim order:
//                                          {"host","blocks":["10.65.0.0/26", ...]}
//   <prefix>/ipam/handles/<handle>         what one handle holds, per block:
//                                          {"handle","blocks":{"10.65.0.0/26":1}}
//   <prefix>/ipam/leaks/<ip>               when `gc` first saw an allocation with no
//                                          endpoint: {"ip","handle","sequence","firstSeen"}
//
// <cidr> is written with "-" for "/" (10.65.0.0-26, fd00:65::-122). Host and
// handle segments are percent-encoded (encodeURIComponent), so a "/" in a
// handle cannot add a level; DNS names and CNI handles come out unchanged.
//
// A block's claim writes the block, its affinity key and the host's list in
// one transaction, so the three always agree (`twill ipam check` verifies
// it). The host's list exists so that a claim can compare one key to count
// the host's blocks against maxBlocksPerHost: a compare cannot see a new key
// appear under a prefix.
import { cidrKeySegment } from "./block-math.js";

export interface IpamKeys {
  readonly root: string;
  readonly blocks: string;
  readonly affinities: string;
  readonly hosts: string;
  readonly handles: string;
  readonly leaks: string;
  block(cidr: string): string;
  affinity(host: string, cidr: string): string;
  hostAffinities(host: string): string;
  host(host: string): string;
  handle(handle: string): string;
  leak(ip: string): string;
}

export function ipamKeys(prefix: string): IpamKeys {
  const root = `${prefix}/ipam/`;
  const blocks = `${root}blocks/`;
  const affinities = `${root}affinity/`;
  const hosts = `${root}hosts/`;
  const handles = `${root}handles/`;
  const leaks = `${root}leaks/`;
  return {
    root,
    blocks,
    affinities,
    hosts,
    handles,
    leaks,
    block: (cidr) => `${blocks}${cidrKeySegment(cidr)}`,
    affinity: (host, cidr) => `${affinities}${encodeURIComponent(host)}/${cidrKeySegment(cidr)}`,
    hostAffinities: (host) => `${affinities}${encodeURIComponent(host)}/`,
    host: (host) => `${hosts}${encodeURIComponent(host)}`,
    handle: (handle) => `${handles}${encodeURIComponent(handle)}`,
    leak: (ip) => `${leaks}${ip}`,
  };
}

/** The host and CIDR segment of an affinity key, or undefined for another key. */
export function parseAffinityKey(
  keys: IpamKeys,
  key: string,
): { host: string; cidrSegment: string } | undefined {
  if (!key.startsWith(keys.affinities)) return undefined;
  const rest = key.slice(keys.affinities.length);
  const slash = rest.indexOf("/");
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  try {
    return { host: decodeURIComponent(rest.slice(0, slash)), cidrSegment: rest.slice(slash + 1) };
  } catch {
    return undefined;
  }
}
