// Whether a namespace's routing table reaches given addresses by a route of
// their own, not by its default route. Pure: fed with `ip -j route show`.
// `lab up` waits until every host and router has such a route to every
// workload: that is BGP having converged.
import { cidrContainsIP, parseCIDR, parseIP } from "../api/ip.js";
import type { CIDR } from "../api/ip.js";

/** One entry of `ip -j route show` (the fields used here). */
export interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  type?: string;
  protocol?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}

function routeCidr(dst: string): CIDR | undefined {
  if (dst === "default") return undefined;
  return parseCIDR(dst, { allowBareIP: true });
}

/** The most specific non-default route covering `address`, if any. */
export function routeFor(routes: readonly KernelRoute[], address: string): KernelRoute | undefined {
  const ip = parseIP(address);
  if (!ip) return undefined;
  let best: { route: KernelRoute; length: number } | undefined;
  for (const route of routes) {
    const cidr = routeCidr(route.dst);
    if (!cidr || cidr.family !== ip.family || !cidrContainsIP(cidr, ip)) continue;
    if (!best || cidr.prefixLength > best.length) best = { route, length: cidr.prefixLength };
  }
  return best?.route;
}

/** True when the route forwards (not unreachable, blackhole or prohibit). */
export function forwards(route: KernelRoute): boolean {
  return route.type === undefined || route.type === "unicast";
}

/** The addresses that have no forwarding route of their own. */
export function uncovered(routes: readonly KernelRoute[], addresses: readonly string[]): string[] {
  return addresses.filter((a) => {
    const route = routeFor(routes, a);
    return !route || !forwards(route);
  });
}
