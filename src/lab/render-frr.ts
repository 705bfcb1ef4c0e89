// FRR configuration for the lab's routers (ToRs, spines, fabric routers).
// Pure: text from a RouterPlan. twill does not configure these routers in
// production; in the lab they stand for the data center's own network, set
// up the way an operator would for hosts that speak BGP.
//
// Choices, each for a reason:
// - `frr defaults datacenter`: short timers (keepalive 3 s, hold 9 s) and
//   ECMP-friendly defaults, as a data-center fabric runs.
// - `no bgp ebgp-requires-policy`: FRR follows RFC 8212 and otherwise
//   exchanges nothing over eBGP without explicit policy.
// - `no bgp default ipv4-unicast` and explicit `activate`: IPv4 routes over
//   IPv4 sessions, IPv6 over IPv6, nothing mixed.
// - `timers connect 1`: FRR's default connect retry is 120 s; a lab
//   router that starts before a host's BIRD must not wait that long.
// - `bgp bestpath as-path multipath-relax` + `maximum-paths`: equal paths
//   through different AS numbers (anycast, a workload address announced by
//   two hosts) become one ECMP route.
// - `redistribute connected`: rack subnets and the plain machine's subnet
//   are known everywhere, so a traceroute's replies find their way back and
//   the plain machine is reachable. Hosts accept only pool routes, so these
//   reach them only as far as their default route already does.
import type { RouterPlan } from "./topology.js";

export interface FrrConfig {
  zebra: string;
  bgpd: string;
}

export function renderFrr(router: RouterPlan, options: { logDir: string }): FrrConfig {
  const zebra = [
    "frr defaults datacenter",
    `hostname ${router.name}`,
    `log file ${options.logDir}/zebra.log informational`,
    "",
  ].join("\n");
  const lines: string[] = [
    "frr defaults datacenter",
    `hostname ${router.name}`,
    `log file ${options.logDir}/bgpd.log informational`,
    "!",
    `router bgp ${router.asNumber}`,
    ` bgp router-id ${router.routerId}`,
    " no bgp ebgp-requires-policy",
    " no bgp default ipv4-unicast",
    " bgp bestpath as-path multipath-relax",
    " timers bgp 3 9",
  ];
  for (const n of router.neighbors) {
    lines.push(
      ` neighbor ${n.address} remote-as ${n.asNumber}`,
      ` neighbor ${n.address} description ${n.description}`,
      ` neighbor ${n.address} timers connect 1`,
    );
  }
  for (const family of [4, 6] as const) {
    const neighbors = router.neighbors.filter((n) => n.family === family);
    if (neighbors.length === 0) continue;
    lines.push(` address-family ${family === 4 ? "ipv4" : "ipv6"} unicast`);
    lines.push("  redistribute connected");
    lines.push("  maximum-paths 16");
    for (const n of neighbors) lines.push(`  neighbor ${n.address} activate`);
    lines.push(" exit-address-family");
  }
  lines.push("!", "");
  return { zebra, bgpd: lines.join("\n") };
}
