// Pure IPv4/IPv6 address and CIDR arithmetic on bigints. Used by validation,
// IPAM's block arithmetic and the calc graph; no node:net, so it stays pure.

export type IPFamily = 4 | 6;

export interface IPAddress {
  family: IPFamily;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
}

export interface CIDR {
  family: IPFamily;
  /** The network address (host bits cleared). */
  network: bigint;
  prefixLength: number;
  /** True when the text had host bits set (e.g. "10.0.0.1/24"). */
  hostBitsSet: boolean;
}

export function familyBits(family: IPFamily): number {
  return family === 4 ? 32 : 128;
}

function parseIPv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return undefined;
    if (p.length > 1 && p.startsWith("0")) return undefined; // no octal-looking octets
    const n = Number(p);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIPv6(text: string): bigint | undefined {
  if (text.length === 0 || text.includes("%")) return undefined;
  let head = text;
  let tailV4: bigint | undefined;
  // An embedded IPv4 tail ("::ffff:1.2.3.4") stands for the last two groups.
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tailV4 = parseIPv4(text.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const doubles = head.split("::");
  if (doubles.length > 2) return undefined;
  const parseGroups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parseGroups(doubles[0] ?? "");
  const right = doubles.length === 2 ? parseGroups(doubles[1] ?? "") : [];
  if (!left || !right) return undefined;
  let groups: number[];
  if (doubles.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    groups = left;
  }
  if (groups.length !== 8) return undefined;
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  if (tailV4 !== undefined) value = (value & ~0xffffffffn) | tailV4;
  return value;
}

/** Parses "10.0.0.1" or "fd00::1"; undefined when it is not an address. */
export function parseIP(text: string): IPAddress | undefined {
  if (text.includes(":")) {
    const v = parseIPv6(text);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseIPv4(text);
  return v === undefined ? undefined : { family: 4, value: v };
}

/**
 * Parses "10.0.0.0/24". With `allowBareIP`, a bare address counts as a
 * host route (/32 or /128). Undefined when invalid.
 */
export function parseCIDR(text: string, options?: { allowBareIP?: boolean }): CIDR | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) {
    if (!options?.allowBareIP) return undefined;
    const ip = parseIP(text);
    if (!ip) return undefined;
    return {
      family: ip.family,
      network: ip.value,
      prefixLength: familyBits(ip.family),
      hostBitsSet: false,
    };
  }
  const ip = parseIP(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(lenText)) return undefined;
  const prefixLength = Number(lenText);
  const bits = familyBits(ip.family);
  if (prefixLength > bits) return undefined;
  const mask = prefixMask(ip.family, prefixLength);
  const network = ip.value & mask;
  return { family: ip.family, network, prefixLength, hostBitsSet: network !== ip.value };
}

/** The netmask of a prefix length as an integer. */
export function prefixMask(family: IPFamily, prefixLength: number): bigint {
  const bits = BigInt(familyBits(family));
  const all = (1n << bits) - 1n;
  return (all << (bits - BigInt(prefixLength))) & all;
}

/** Formats an address: dotted quad, or RFC 5952 compressed IPv6. */
export function formatIP(family: IPFamily, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // Longest run of two or more zero groups is compressed (first one on ties).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/** Canonical text of a CIDR (network address / prefix length). */
export function formatCIDR(cidr: Pick<CIDR, "family" | "network" | "prefixLength">): string {
  return `${formatIP(cidr.family, cidr.network)}/${cidr.prefixLength}`;
}

/** True when `inner` lies entirely within `outer` (same family). */
export function cidrContains(outer: CIDR, inner: CIDR): boolean {
  if (outer.family !== inner.family || inner.prefixLength < outer.prefixLength) return false;
  return (inner.network & prefixMask(outer.family, outer.prefixLength)) === outer.network;
}

/** True when the two CIDRs share any address. */
export function cidrOverlaps(a: CIDR, b: CIDR): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** True when the address lies within the CIDR. */
export function cidrContainsIP(cidr: CIDR, ip: IPAddress): boolean {
  if (cidr.family !== ip.family) return false;
  return (ip.value & prefixMask(cidr.family, cidr.prefixLength)) === cidr.network;
}
