// Builders for the resources calc tests feed the graph: each returns the
// stored form of a projectcalico.org/v3 (or networking.k8s.io/v1) resource,
// run through validateResource so that tests only ever use what the API
// would accept and store (defaults filled in, names checked). A builder that
// is handed something invalid throws with every field error.
//
// Also the helpers that turn a list of resources ("a datastore state") into
// graph input: a key per resource, and the transition between two states.
import { validateResource } from "../../api/validate.js";
import { kindOf } from "../../api/kinds.js";
import type { KindId } from "../../api/kinds.js";
import type { Resource } from "../../api/resource.js";
import { expectedWorkloadEndpointName } from "../../api/schemas/workload-endpoint.js";
import type { CalcInput } from "../calc-graph.js";
import { stableHash } from "../model.js";

type Doc = Record<string, unknown>;

const V3 = "projectcalico.org/v3";

/** The stored form of a document; throws with every field error if it is invalid. */
export function stored<T extends Resource = Resource>(doc: Doc): T {
  const r = validateResource(doc);
  if (!r.ok) {
    throw new Error(
      `test resource ${JSON.stringify(doc)} is invalid: ${r.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
    );
  }
  return r.resource as T;
}

function meta(name: string, namespace?: string, labels?: Record<string, string>): Doc {
  const m: Doc = { name };
  if (namespace !== undefined) m["namespace"] = namespace;
  if (labels !== undefined) m["labels"] = labels;
  return m;
}

export interface WorkloadOptions {
  namespace: string;
  pod: string;
  node: string;
  /** Addresses (bare or /32, /128). */
  ips: string[];
  labels?: Record<string, string>;
  /** Default: ["kns.<namespace>"]. */
  profiles?: string[];
  ports?: { name: string; protocol: string | number; port: number }[];
  serviceAccount?: string;
  orchestrator?: string;
}

/** A WorkloadEndpoint named as Calico names it, with a host-side interface derived from it. */
export function workload(o: WorkloadOptions): Resource {
  const spec: Doc = {
    orchestrator: o.orchestrator ?? "k8s",
    node: o.node,
    endpoint: "eth0",
    ipNetworks: o.ips,
    profiles: o.profiles ?? [`kns.${o.namespace}`],
    interfaceName: `tw${stableHash(`${o.namespace}/${o.pod}`).slice(0, 11)}`,
  };
  if ((o.orchestrator ?? "k8s") === "k8s") spec["pod"] = o.pod;
  else spec["workload"] = o.pod;
  if (o.ports !== undefined) spec["ports"] = o.ports;
  if (o.serviceAccount !== undefined) spec["serviceAccountName"] = o.serviceAccount;
  const name = expectedWorkloadEndpointName(spec);
  if (typeof name !== "string") throw new Error(`workload ${o.pod}: missing ${name.missing}`);
  return stored({
    apiVersion: V3,
    kind: "WorkloadEndpoint",
    metadata: meta(name, o.namespace, o.labels),
    spec,
  });
}

export interface HostEndpointOptions {
  name: string;
  node: string;
  interfaceName?: string;
  ips?: string[];
  labels?: Record<string, string>;
  profiles?: string[];
  ports?: { name: string; protocol: string | number; port: number }[];
}

export function hostEndpoint(o: HostEndpointOptions): Resource {
  const spec: Doc = { node: o.node, interfaceName: o.interfaceName ?? "eth0" };
  if (o.ips !== undefined) spec["expectedIPs"] = o.ips;
  if (o.profiles !== undefined) spec["profiles"] = o.profiles;
  if (o.ports !== undefined) spec["ports"] = o.ports;
  return stored({
    apiVersion: V3,
    kind: "HostEndpoint",
    metadata: meta(o.name, undefined, o.labels),
    spec,
  });
}

/** A profile; `ingress`/`egress` default to none. */
export function profile(
  name: string,
  spec: { labelsToApply?: Record<string, string>; ingress?: Doc[]; egress?: Doc[] } = {},
  labels?: Record<string, string>,
): Resource {
  return stored({ apiVersion: V3, kind: "Profile", metadata: meta(name, undefined, labels), spec });
}

/**
 * A namespace's profile as Calico's Kubernetes integration writes it: the
 * namespace's labels `pcns.`-prefixed (with its name), and allow all.
 */
export function namespaceProfile(namespace: string, labels: Record<string, string> = {}): Resource {
  const labelsToApply: Record<string, string> = { "pcns.projectcalico.org/name": namespace };
  for (const [k, v] of Object.entries(labels)) labelsToApply[`pcns.${k}`] = v;
  return profile(`kns.${namespace}`, {
    labelsToApply,
    ingress: [{ action: "Allow" }],
    egress: [{ action: "Allow" }],
  });
}

export function tier(
  name: string,
  spec: { order?: number; defaultAction?: string } = {},
): Resource {
  return stored({ apiVersion: V3, kind: "Tier", metadata: meta(name), spec });
}

export function globalPolicy(name: string, spec: Doc): Resource {
  return stored({ apiVersion: V3, kind: "GlobalNetworkPolicy", metadata: meta(name), spec });
}

export function networkPolicy(namespace: string, name: string, spec: Doc): Resource {
  return stored({ apiVersion: V3, kind: "NetworkPolicy", metadata: meta(name, namespace), spec });
}

export function k8sNetworkPolicy(namespace: string, name: string, spec: Doc): Resource {
  return stored({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: meta(name, namespace),
    spec,
  });
}

export function networkSet(
  namespace: string,
  name: string,
  nets: string[],
  labels: Record<string, string>,
): Resource {
  return stored({
    apiVersion: V3,
    kind: "NetworkSet",
    metadata: meta(name, namespace, labels),
    spec: { nets },
  });
}

export function globalNetworkSet(
  name: string,
  nets: string[],
  labels: Record<string, string>,
): Resource {
  return stored({
    apiVersion: V3,
    kind: "GlobalNetworkSet",
    metadata: meta(name, undefined, labels),
    spec: { nets },
  });
}

// ---------------------------------------------------------------------------
// States and transitions.

/** A datastore state: the resources it holds. */
export type State = readonly Resource[];

function kindIdOf(r: Resource): KindId {
  const k = kindOf(r.apiVersion, r.kind);
  if (!k) throw new Error(`unknown kind ${r.apiVersion} ${r.kind}`);
  return k.id;
}

/** The datastore identity of a resource: kind, namespace, name. */
export function resourceKey(r: Resource): string {
  return `${kindIdOf(r)}/${r.metadata.namespace ?? ""}/${r.metadata.name}`;
}

/** The delete the syncer sends for a resource that vanished. */
export function deleteOf(r: Resource): CalcInput {
  const d: CalcInput = { type: "delete", kind: { id: kindIdOf(r) }, name: r.metadata.name };
  if (r.metadata.namespace !== undefined) d.namespace = r.metadata.namespace;
  return d;
}

/**
 * The updates that take a datastore from `from` to `to`, as a syncer sends
 * them: a put for every resource that is new or changed (in `to`'s order),
 * then a delete for every one that vanished (in `from`'s order).
 */
export function transition(from: State, to: State): CalcInput[] {
  const before = new Map(from.map((r) => [resourceKey(r), JSON.stringify(r)]));
  const after = new Set(to.map(resourceKey));
  const out: CalcInput[] = [];
  for (const r of to) {
    if (before.get(resourceKey(r)) !== JSON.stringify(r)) out.push({ type: "put", resource: r });
  }
  for (const r of from) if (!after.has(resourceKey(r))) out.push(deleteOf(r));
  return out;
}
