// Flows named the way people (and explain.ts) name them, turned into the
// dataplane's view (ModelFlow): each end's address, and the local endpoint id
// when the end is an endpoint on this host. The ends' shapes match explain's
// FlowEnd, so one flow can be handed to both.
import type { Resource } from "../../api/resource.js";
import type { HostEndpoint } from "../../api/schemas/host-endpoint.js";
import type { WorkloadEndpoint } from "../../api/schemas/workload-endpoint.js";
import { parseCIDR } from "../../api/ip.js";
import { PROTOCOL_NUMBERS } from "../model.js";
import type { ModelFlow, ModelFlowEnd } from "./dataplane-model.js";

export type FlowEndSpec =
  { workload: { namespace: string; name: string } } | { host: { name: string } } | { ip: string };

export interface FlowSpec {
  src: FlowEndSpec;
  dst: FlowEndSpec;
  protocol: string | number;
  srcPort?: number;
  dstPort?: number;
  icmp?: { type: number; code?: number };
  ipVersion?: 4 | 6;
}

function addressOf(text: string): { ip: string; family: 4 | 6 } | undefined {
  const c = parseCIDR(text, { allowBareIP: true });
  if (!c) return undefined;
  const slash = text.indexOf("/");
  return { ip: slash < 0 ? text : text.slice(0, slash), family: c.family };
}

/** The endpoint resource an end names, or undefined for a plain address. */
export function endpointOfEnd(
  resources: readonly Resource[],
  end: FlowEndSpec,
): WorkloadEndpoint | HostEndpoint | undefined {
  if ("ip" in end) return undefined;
  let found: Resource | undefined;
  for (const r of resources) {
    if ("workload" in end) {
      if (
        r.kind === "WorkloadEndpoint" &&
        r.metadata.name === end.workload.name &&
        (r.metadata.namespace ?? "default") === end.workload.namespace
      )
        found = r;
    } else if (r.kind === "HostEndpoint" && r.metadata.name === end.host.name) found = r;
  }
  if (!found) throw new Error(`flow end ${JSON.stringify(end)} is not in the state`);
  return found as WorkloadEndpoint | HostEndpoint;
}

function addressesOfEnd(resources: readonly Resource[], end: FlowEndSpec): string[] {
  if ("ip" in end) return [end.ip];
  const ep = endpointOfEnd(resources, end)!;
  return ep.kind === "WorkloadEndpoint"
    ? ((ep as WorkloadEndpoint).spec.ipNetworks ?? [])
    : ((ep as HostEndpoint).spec.expectedIPs ?? []);
}

/** The IP family both ends have (IPv4 first), or the flow's ipVersion. */
export function flowFamily(resources: readonly Resource[], flow: FlowSpec): 4 | 6 | undefined {
  const fams = (end: FlowEndSpec) =>
    new Set(addressesOfEnd(resources, end).flatMap((a) => addressOf(a)?.family ?? []));
  const s = fams(flow.src);
  const d = fams(flow.dst);
  for (const f of flow.ipVersion !== undefined ? [flow.ipVersion] : ([4, 6] as const)) {
    if (s.has(f) && d.has(f)) return f;
  }
  return undefined;
}

/**
 * The flow as the dataplane of `hostname` sees it: ends resolved to their
 * first address of the flow's family; an end is a local endpoint when its
 * endpoint's node is `hostname`.
 */
export function modelFlow(
  resources: readonly Resource[],
  hostname: string,
  flow: FlowSpec,
): ModelFlow {
  const family = flowFamily(resources, flow);
  if (family === undefined) throw new Error(`flow ${JSON.stringify(flow)}: no common IP family`);
  const end = (spec: FlowEndSpec, port: number | undefined): ModelFlowEnd => {
    const ip = addressesOfEnd(resources, spec)
      .map(addressOf)
      .find((a) => a?.family === family)!.ip;
    const out: ModelFlowEnd = { ip };
    const ep = endpointOfEnd(resources, spec);
    if (ep && ep.spec.node === hostname) {
      out.endpoint =
        ep.kind === "WorkloadEndpoint"
          ? `workload/${ep.metadata.namespace ?? "default"}/${ep.metadata.name}`
          : `host/${ep.metadata.name}`;
    }
    if (port !== undefined) out.port = port;
    return out;
  };
  const protocol =
    typeof flow.protocol === "number"
      ? flow.protocol
      : (Object.entries(PROTOCOL_NUMBERS).find(
          ([n]) => n.toLowerCase() === String(flow.protocol).toLowerCase(),
        )?.[1] ?? Number(flow.protocol));
  const out: ModelFlow = {
    src: end(flow.src, flow.srcPort),
    dst: end(flow.dst, flow.dstPort),
    protocol,
  };
  if (flow.icmp !== undefined) out.icmp = flow.icmp;
  return out;
}
