// What `twill lab check` probes, and what policy says each probe should
// see. Pure: no I/O; lab-check.ts reads the datastore, runs the probes and
// compares.
//
// For every ordered pair of distinct workloads (a, b) and every address
// family the lab has: a TCP connection from a to b's port, and an ICMP echo
// (ICMPv6 for IPv6). The expected verdict comes from the calc's brute-force
// reference (src/calc/explain.ts), bookended as the dataplane is: a's
// egress on a's host AND b's ingress on b's host, Calico and Kubernetes
// NetworkPolicies, tiers and profiles alike.
//
// A lab workload is found among the WorkloadEndpoints by its address (the
// CNI plugin names endpoints `<node>-cni-<containerID>-eth0`; the address is
// what the probe uses anyway).
import { kindOf } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import type { WorkloadEndpoint } from "../api/schemas/workload-endpoint.js";
import { explain } from "../calc/explain.js";
import type { Decision, Explanation, Flow } from "../calc/explain.js";
import { TwillError } from "../util/errors.js";

/** The TCP port probed by default (the lab's responders listen there). */
export const DEFAULT_CHECK_PORT = 80;

export interface CheckWorkload {
  name: string;
  ns: string;
  host: string;
  labels: Record<string, string>;
  ipv4?: string;
  ipv6?: string;
}

export type CheckProto = "tcp" | "icmp";

export interface PlannedProbe {
  /** Workload names. */
  from: string;
  to: string;
  proto: CheckProto;
  family: 4 | 6;
  /** b's address of that family. */
  addr: string;
  /** tcp only. */
  port?: number;
  /** What policy says. */
  allowed: boolean;
  /** Which end's policy denies it (egress first, as the packet meets them). */
  deniedAt?: "egress" | "ingress";
  /** Why, in a few words per direction: "profile kns.default rule 0 (Allow)". */
  egress: string;
  ingress: string;
}

export interface CheckPlanOptions {
  port: number;
  /** Address families to probe; a pair is skipped in a family either end lacks. */
  families: readonly (4 | 6)[];
}

/** The WorkloadEndpoint holding `ip` (as `ip/32` or `ip/128` in ipNetworks). */
function endpointOf(endpoints: readonly Resource[], ip: string): Resource | undefined {
  return endpoints.find((r) =>
    ((r as WorkloadEndpoint).spec?.ipNetworks ?? []).some((n) => n.split("/")[0] === ip),
  );
}

/** "default/tenant-isolation rule 1 (Deny)", "profile kns.default rule 0 (Allow)", ... */
export function decisionText(d: Decision): string {
  switch (d.by) {
    case "rule":
      return d.stage === "tier"
        ? `${d.policy} rule ${d.ruleIndex} (${d.action})`
        : `profile ${d.profile} rule ${d.ruleIndex} (${d.action})`;
    case "tier-end":
      return `end of tier ${d.tier}: no rule matched (Deny)`;
    case "missing-profile":
      return `profile ${d.profile} does not exist (Deny)`;
    case "no-match":
      return "nothing allowed it (Deny)";
    case "not-applicable":
      return "not a twill endpoint (Allow)";
  }
}

/** Why policy allows or denies a probe, in one line. */
export function verdictReason(p: Pick<PlannedProbe, "egress" | "ingress" | "deniedAt">): string {
  if (p.deniedAt === "egress") return `egress: ${p.egress}`;
  if (p.deniedAt === "ingress") return `ingress: ${p.ingress}`;
  return `egress: ${p.egress}; ingress: ${p.ingress}`;
}

/**
 * Every probe between distinct workloads with the verdict policy gives it.
 * Throws TwillError "NotFound" when a workload has no endpoint in `resources`.
 */
export function planCheck(
  resources: readonly Resource[],
  workloads: readonly CheckWorkload[],
  options: CheckPlanOptions,
): PlannedProbe[] {
  const endpoints = resources.filter(
    (r) => kindOf(r.apiVersion, r.kind)?.id === "WorkloadEndpoint",
  );
  const ends = workloads.map((w) => {
    const ip = w.ipv4 ?? w.ipv6;
    const ep = ip === undefined ? undefined : endpointOf(endpoints, ip);
    if (ep === undefined) {
      throw new TwillError(
        "NotFound",
        `workload ${w.name} (${ip ?? "no address"}) has no WorkloadEndpoint in the datastore`,
      );
    }
    return {
      w,
      end: {
        workload: { namespace: ep.metadata.namespace ?? "default", name: ep.metadata.name },
      },
    };
  });
  const state = { resources };
  const out: PlannedProbe[] = [];
  for (const a of ends) {
    for (const b of ends) {
      if (a === b) continue;
      for (const family of options.families) {
        const src = family === 4 ? a.w.ipv4 : a.w.ipv6;
        const dst = family === 4 ? b.w.ipv4 : b.w.ipv6;
        if (src === undefined || dst === undefined) continue;
        const base = { src: a.end, dst: b.end, ipVersion: family, srcIP: src, dstIP: dst };
        const flows: [CheckProto, Flow][] = [
          ["tcp", { ...base, protocol: "TCP", dstPort: options.port }],
          [
            "icmp",
            family === 4
              ? { ...base, protocol: "ICMP", icmp: { type: 8, code: 0 } }
              : { ...base, protocol: "ICMPv6", icmp: { type: 128, code: 0 } },
          ],
        ];
        for (const [proto, flow] of flows) {
          const e: Explanation = explain(state, flow);
          out.push({
            from: a.w.name,
            to: b.w.name,
            proto,
            family,
            addr: dst,
            ...(proto === "tcp" ? { port: options.port } : {}),
            allowed: e.allowed,
            ...(e.egress.action === "Deny"
              ? { deniedAt: "egress" as const }
              : e.ingress.action === "Deny"
                ? { deniedAt: "ingress" as const }
                : {}),
            egress: decisionText(e.egress.decision),
            ingress: decisionText(e.ingress.decision),
          });
        }
      }
    }
  }
  return out;
}

/** A planned probe with what the probe saw. */
export interface CheckResult extends PlannedProbe {
  /** The probe got through (TCP connected, echo answered). */
  observed: boolean;
  matched: boolean;
  /** What the probe saw, for people: "connected, seen as 10.65.0.1", "no connection within 1000 ms". */
  detail: string;
  attempts: number;
}

/** What `twill lab check` found (also its `-o json`). */
export interface LabCheckReport {
  lab: string;
  port: number;
  families: (4 | 6)[];
  /** The datastore revision the policy was read at. */
  revision: number;
  /** The policies in force: "GlobalNetworkPolicy tenant-isolation", "NetworkPolicy default/x". */
  policies: string[];
  workloads: {
    name: string;
    host: string;
    labels: Record<string, string>;
    ipv4?: string;
    ipv6?: string;
  }[];
  results: CheckResult[];
  /** How many results do not match the policy. */
  mismatches: number;
  /** Something about the machine that may explain mismatches (a full neighbour table). */
  note?: string;
}
