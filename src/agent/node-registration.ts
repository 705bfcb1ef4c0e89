// The agent creates or updates its own Node resource at start: its
// addresses and BGP identity from its flags. Everything else on the Node
// (labels, route reflector cluster ID, orchestrator refs, fields an operator
// set) is kept. A field not given is left as stored, so restarting without
// --node-ipv4 does not erase an address. Writes compare the resourceVersion read, so
// an operator's concurrent `twill label node` is never lost: on a conflict
// the agent reads again and retries, a bounded number of times.
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { nodeSchema } from "../api/schemas/node.js";
import { fieldErrors } from "../api/validate.js";
import type { ResourceStore } from "../datastore/resource-store.js";
import { TwillError, isErrorCode } from "../util/errors.js";

const NODE = kindById("Node");
const MAX_ATTEMPTS = 5;

export interface NodeIdentity {
  name: string;
  /** "10.0.0.1/24" */
  ipv4?: string;
  /** "fd00::1/64" */
  ipv6?: string;
  asNumber?: number;
}

export interface NodeRegistration {
  resource: Resource;
  created: boolean;
  changed: boolean;
}

/** The Node with the identity applied (a new object; `current` is not changed). */
export function nodeWithIdentity(current: Resource | undefined, id: NodeIdentity): Resource {
  const base: Resource = current
    ? structuredClone(current)
    : { apiVersion: "projectcalico.org/v3", kind: "Node", metadata: { name: id.name } };
  const spec = { ...((base.spec as Record<string, unknown> | undefined) ?? {}) };
  const bgp = { ...((spec["bgp"] as Record<string, unknown> | undefined) ?? {}) };
  if (id.ipv4 !== undefined) bgp["ipv4Address"] = id.ipv4;
  if (id.ipv6 !== undefined) bgp["ipv6Address"] = id.ipv6;
  if (id.asNumber !== undefined) bgp["asNumber"] = id.asNumber;
  if (Object.keys(bgp).length > 0) spec["bgp"] = bgp;
  const given = [id.ipv4, id.ipv6].filter((a): a is string => a !== undefined);
  if (given.length > 0) {
    // Our own addresses (CalicoNodeIP) follow the flags; others are kept.
    const others = (
      (spec["addresses"] as { address: string; type?: string }[] | undefined) ?? []
    ).filter((a) => a.type !== "CalicoNodeIP");
    spec["addresses"] = [...given.map((address) => ({ address, type: "CalicoNodeIP" })), ...others];
  }
  base.spec = spec;
  return base;
}

export async function registerNode(
  store: ResourceStore,
  id: NodeIdentity,
): Promise<NodeRegistration> {
  for (let attempt = 1; ; attempt++) {
    let current: Resource | undefined;
    try {
      current = await store.get(NODE, id.name);
    } catch (err) {
      if (!isErrorCode(err, "NotFound")) throw err;
    }
    const wanted = nodeWithIdentity(current, id);
    const checked = nodeSchema.safeParse(wanted);
    if (!checked.success) {
      const problems = fieldErrors(checked.error)
        .map((e) => `${e.path}: ${e.message}`)
        .join("; ");
      throw new TwillError("Invalid", `cannot register Node "${id.name}": ${problems}`);
    }
    if (current && JSON.stringify(current.spec ?? {}) === JSON.stringify(wanted.spec ?? {})) {
      return { resource: current, created: false, changed: false };
    }
    try {
      if (!current) return { resource: await store.create(wanted), created: true, changed: true };
      return { resource: await store.update(wanted), created: false, changed: true };
    } catch (err) {
      const raced =
        isErrorCode(err, "Conflict") ||
        isErrorCode(err, "AlreadyExists") ||
        isErrorCode(err, "NotFound");
      if (!raced || attempt >= MAX_ATTEMPTS) throw err;
    }
  }
}
