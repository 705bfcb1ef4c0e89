// The contract between the agent and the CNI plugin about a workload
// endpoint's policy: the agent reports, per WorkloadEndpoint it runs, whether
// the endpoint's policy is programmed into the host's dataplane, and which
// revision of the endpoint it programmed. The CNI plugin's ADD waits for
// "programmed" at a revision at least as new as the endpoint it wrote, so a
// workload never sends a packet before its policy exists.
//
//   key    <prefix>/status/endpoints/<node>/<namespace>/<endpoint name>
//   value  {"state":"programmed"|"error","resourceVersion":"<WEP revision>","message"?:"..."}
//
// Writers: the agent (one per node) puts the key after each dataplane apply
// that touched the endpoint and deletes it when the endpoint is gone; the
// plugin deletes it too when it deletes the endpoint (harmless if the agent
// got there first). A status for an older revision of the endpoint (a pod
// recreated under the same name, labels changed since) does not count.
import { TwillError } from "../util/errors.js";

export type EndpointProgramState = "programmed" | "error";

export interface EndpointStatus {
  state: EndpointProgramState;
  /** The WorkloadEndpoint's metadata.resourceVersion that this status is about. */
  resourceVersion: string;
  /** Why programming failed, or any note (optional). */
  message?: string;
}

export interface EndpointRef {
  node: string;
  namespace: string;
  /** The WorkloadEndpoint's name. */
  name: string;
}

function checkSegment(field: string, value: string): void {
  if (value === "" || value.includes("/")) {
    throw new TwillError(
      "Invalid",
      `endpoint status ${field}: "${value}" must be non-empty, no "/"`,
    );
  }
}

/** Every status key of one node (or of all nodes when `node` is omitted), as a watch prefix. */
export function endpointStatusPrefix(prefix: string, node?: string): string {
  const base = `${prefix.replace(/\/+$/, "")}/status/endpoints/`;
  if (node === undefined) return base;
  checkSegment("node", node);
  return `${base}${node}/`;
}

/** The status key of one endpoint. */
export function endpointStatusKey(prefix: string, ref: EndpointRef): string {
  checkSegment("namespace", ref.namespace);
  checkSegment("name", ref.name);
  return `${endpointStatusPrefix(prefix, ref.node)}${ref.namespace}/${ref.name}`;
}

/** The endpoint a status key is about, or undefined for a key not laid out so. */
export function parseEndpointStatusKey(prefix: string, key: string): EndpointRef | undefined {
  const base = endpointStatusPrefix(prefix);
  if (!key.startsWith(base)) return undefined;
  const parts = key.slice(base.length).split("/");
  if (parts.length !== 3 || parts.some((p) => p === "")) return undefined;
  const [node, namespace, name] = parts as [string, string, string];
  return { node, namespace, name };
}

/** The stored form of a status. */
export function formatEndpointStatus(status: EndpointStatus): string {
  const out: EndpointStatus = { state: status.state, resourceVersion: status.resourceVersion };
  if (status.message !== undefined) out.message = status.message;
  return JSON.stringify(out);
}

/** Parses a stored status; TwillError "Invalid" naming the key for anything malformed. */
export function parseEndpointStatus(value: string, key = "endpoint status"): EndpointStatus {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch (err) {
    throw new TwillError("Invalid", `${key}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TwillError("Invalid", `${key}: expected a JSON object`);
  }
  const o = raw as Record<string, unknown>;
  const state = o["state"];
  if (state !== "programmed" && state !== "error") {
    throw new TwillError(
      "Invalid",
      `${key}: state must be "programmed" or "error", got ${JSON.stringify(state)}`,
    );
  }
  const rv = o["resourceVersion"];
  if (typeof rv !== "string" || !/^\d+$/.test(rv)) {
    throw new TwillError(
      "Invalid",
      `${key}: resourceVersion must be a revision number as a string, got ${JSON.stringify(rv)}`,
    );
  }
  const status: EndpointStatus = { state, resourceVersion: rv };
  const message = o["message"];
  if (message !== undefined) {
    if (typeof message !== "string") {
      throw new TwillError("Invalid", `${key}: message must be a string`);
    }
    status.message = message;
  }
  return status;
}

/**
 * True when `status` says the endpoint is programmed at `resourceVersion` or
 * a later revision (revisions are etcd revisions: numbers, compared as such).
 */
export function isProgrammedAt(status: EndpointStatus, resourceVersion: string): boolean {
  return status.state === "programmed" && BigInt(status.resourceVersion) >= BigInt(resourceVersion);
}
