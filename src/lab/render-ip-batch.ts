// iproute2 batch text (`ip -n <ns> -batch -`) for a lab plan. Pure.
//
// Building goes in three rounds, each one process per namespace and every
// namespace of a round in parallel:
//
//   0. `ip -batch -`: netns add, for every namespace at once
//   1. create: in each namespace its bridges, and the veth pairs it creates
//      (the other end is created straight into the peer's namespace)
//   2. configure: in each namespace lo up, ports into bridges, addresses, up,
//      routes
//
// Round 1 before round 2 because a veth end must exist before its own
// namespace configures it. Nothing here names the machine's own namespace:
// every link is created inside a lab namespace with `ip -n`.
import type { LabPlan, NamespacePlan } from "./topology.js";

/** Lines for round 0: every namespace of the plan (workloads come later). */
export function renderNetnsAdd(names: readonly string[]): string {
  return names.map((n) => `netns add ${n}\n`).join("");
}

/** Lines for round 0 of teardown: `ip -force -batch -` goes on past a missing one. */
export function renderNetnsDelete(names: readonly string[]): string {
  return names.map((n) => `netns del ${n}\n`).join("");
}

/** Round 1 for one namespace: its bridges and the veth pairs it creates. */
export function renderCreate(plan: LabPlan, ns: NamespacePlan): string {
  const lines: string[] = [];
  for (const bridge of ns.bridges) {
    // No multicast snooping: without a querier it can starve IPv6 neighbor discovery.
    lines.push(`link add ${bridge.name} type bridge mcast_snooping 0`);
  }
  for (const link of plan.links) {
    if (link.from.ns !== ns.short) continue;
    const peer = plan.namespaces.find((n) => n.short === link.to.ns);
    if (!peer) continue;
    lines.push(
      `link add ${link.from.ifname} type veth peer name ${link.to.ifname} netns ${peer.name}`,
    );
  }
  return lines.map((l) => `${l}\n`).join("");
}

function addressLine(address: string, dev: string): string {
  // nodad: an IPv6 address is usable at once rather than after ~1 s of DAD.
  return address.includes(":")
    ? `addr add ${address} dev ${dev} nodad`
    : `addr add ${address} dev ${dev}`;
}

/** Round 2 for one namespace: lo, bridges, ports, addresses, links up, routes. */
export function renderConfigure(ns: NamespacePlan): string {
  const lines: string[] = ["link set lo up"];
  for (const bridge of ns.bridges) {
    for (const a of bridge.addresses) lines.push(addressLine(a, bridge.name));
    lines.push(`link set ${bridge.name} up`);
  }
  for (const iface of ns.interfaces) {
    if (iface.master !== undefined) lines.push(`link set ${iface.name} master ${iface.master}`);
    for (const a of iface.addresses) lines.push(addressLine(a, iface.name));
    lines.push(`link set ${iface.name} up`);
  }
  for (const route of ns.routes) {
    lines.push(`route add ${route.to} via ${route.via} dev ${route.dev}`);
  }
  return lines.map((l) => `${l}\n`).join("");
}

/** `sysctl -w` arguments for one namespace. */
export function sysctlArgs(ns: NamespacePlan): string[] {
  return ns.sysctls.map(([key, value]) => `${key}=${value}`);
}

/**
 * nftables for a host: the management segment carries the host's own
 * traffic only (etcd, health checks), never forwarded traffic, so no
 * workload reaches etcd through its host. A table of the lab's own, apart
 * from the agent's `inet twill`.
 */
export function renderHostNft(): string {
  return [
    "table inet twill_lab {",
    "  chain forward {",
    "    type filter hook forward priority -10; policy accept;",
    '    iifname "mgmt0" drop',
    '    oifname "mgmt0" drop',
    "  }",
    "}",
    "",
  ].join("\n");
}
