// The WorkloadEndpoint that ADD writes for an attachment, and its check.
//
// Labels: the config's `labels`, then args.cni.labels, then Calico's own
// projectcalico.org/namespace and projectcalico.org/orchestrator (which
// selectors may rely on and which nothing may override). Profiles: the
// config's `profiles`, default ["kns.<namespace>"] as Calico's Kubernetes
// namespace profile.
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import type { NetConf } from "./cni-config.js";
import { CNI_ERROR, CniError } from "./cni-error.js";
import type { EndpointIdentity } from "./endpoint-identity.js";
import type { WorkloadAddresses } from "./netlink.js";

export const WORKLOAD_ENDPOINT = kindById("WorkloadEndpoint");

/** Container IDs the WorkloadEndpoint schema accepts in spec.containerID. */
const SPEC_CONTAINER_ID = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

export interface EndpointDetails {
  addresses: WorkloadAddresses;
  /** The workload side's MAC. */
  mac?: string;
}

export function buildWorkloadEndpoint(
  id: EndpointIdentity,
  conf: NetConf,
  details: EndpointDetails,
): Resource {
  const labels: Record<string, string> = {
    ...conf.labels,
    ...conf.argsLabels,
    "projectcalico.org/namespace": id.namespace,
    "projectcalico.org/orchestrator": id.orchestrator,
  };
  const ipNetworks: string[] = [];
  if (details.addresses.ipv4 !== undefined) ipNetworks.push(`${details.addresses.ipv4}/32`);
  if (details.addresses.ipv6 !== undefined) ipNetworks.push(`${details.addresses.ipv6}/128`);
  const spec: Record<string, unknown> = {
    orchestrator: id.orchestrator,
    node: id.node,
    endpoint: id.endpoint,
    interfaceName: id.hostInterface,
    ipNetworks,
    profiles: conf.profiles ?? [`kns.${id.namespace}`],
  };
  if (id.pod !== undefined) spec["pod"] = id.pod;
  // The name of a "cni" endpoint is built from the container ID, so it must be valid there.
  if (id.orchestrator === "cni" || SPEC_CONTAINER_ID.test(id.containerId)) {
    spec["containerID"] = id.containerId;
  }
  if (details.mac !== undefined) spec["mac"] = details.mac;
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "WorkloadEndpoint",
    metadata: { name: id.wepName, namespace: id.namespace, labels },
    spec,
  };
}

/**
 * Checks an endpoint against the WorkloadEndpoint schema (the one kind's
 * schema: validating against all of them would load every schema, which
 * costs start-up time; and loaded only here, where ADD has time to spare).
 * CniError 7 naming each field otherwise.
 */
export async function checkWorkloadEndpoint(wep: Resource): Promise<void> {
  const { workloadEndpointSchema } = await import("../api/schemas/workload-endpoint.js");
  const parsed = workloadEndpointSchema.safeParse(wep);
  if (parsed.success) return;
  const problems = parsed.error.issues.map(
    (i) => `${i.path.map(String).join(".") || "(endpoint)"}: ${i.message}`,
  );
  throw new CniError(
    CNI_ERROR.invalidConfig,
    "the workload endpoint would be invalid",
    `WorkloadEndpoint "${wep.metadata.name}" in namespace "${wep.metadata.namespace ?? ""}": ${problems.join("; ")}`,
  );
}
