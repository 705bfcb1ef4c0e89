// Who an attachment is: the WorkloadEndpoint it becomes, the host-side
// interface name, the IPAM handle. Computed the same way by ADD, CHECK and
// DEL from the same environment and config, so DEL finds everything ADD made
// without any local state.
//
//   orchestrator  "k8s" when CNI_ARGS carries K8S_POD_NAME and K8S_POD_NAMESPACE,
//                 else "cni" (namespace from config, default "default")
//   endpoint      <node>-<orchestrator>-<pod | containerID>-<ifname>  (Calico's scheme,
//                 every '-' in a part doubled; expectedWorkloadEndpointName)
//   host veth     <interfacePrefix> + hex(sha256("<namespace>/<endpoint>/<containerID>")),
//                 15 characters at most: "tw" + 11 hex digits by default. The
//                 container ID is part of it so a pod recreated under the same
//                 name never collides with its predecessor's leftover veth.
//   IPAM handle   "<network name>.<containerID>" (ipam.ts's convention)
import { createHash } from "node:crypto";
import { expectedWorkloadEndpointName } from "../api/schemas/workload-endpoint.js";
import { CNI_ERROR, CniError } from "./cni-error.js";
import type { NetConf } from "./cni-config.js";
import { DEFAULT_NAMESPACE } from "./cni-config.js";
import type { CniEnv } from "./cni-env.js";

export interface EndpointIdentity {
  node: string;
  orchestrator: "k8s" | "cni";
  namespace: string;
  /** The pod's name (orchestrator "k8s"). */
  pod?: string;
  containerId: string;
  /** The interface inside the workload (CNI_IFNAME). */
  endpoint: string;
  /** The WorkloadEndpoint's name. */
  wepName: string;
  /** The host side of the veth. */
  hostInterface: string;
  /** The IPAM handle. */
  handle: string;
}

/** Longest hash part of a host interface name (Calico uses 11 hex digits too). */
const HASH_DIGITS = 11;
const MAX_IFNAME = 15;

/** The host-side interface name for an endpoint. */
export function hostInterfaceName(
  prefix: string,
  id: { namespace: string; wepName: string; containerId: string },
): string {
  const digits = Math.min(HASH_DIGITS, MAX_IFNAME - prefix.length);
  const hash = createHash("sha256")
    .update(`${id.namespace}/${id.wepName}/${id.containerId}`)
    .digest("hex");
  return prefix + hash.slice(0, digits);
}

/** The IPAM handle of an attachment. */
export function ipamHandle(networkName: string, containerId: string): string {
  return `${networkName}.${containerId}`;
}

/** Identity of the attachment described by `env` and `conf` on `node`. */
export function endpointIdentity(conf: NetConf, env: CniEnv, node: string): EndpointIdentity {
  const pod = env.args.get("K8S_POD_NAME") ?? "";
  const podNamespace = env.args.get("K8S_POD_NAMESPACE") ?? "";
  if ((pod === "") !== (podNamespace === "")) {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      "invalid CNI_ARGS",
      `CNI_ARGS: K8S_POD_NAME and K8S_POD_NAMESPACE must be given together (got ${pod === "" ? "K8S_POD_NAMESPACE" : "K8S_POD_NAME"} only)`,
    );
  }
  const orchestrator = pod !== "" ? "k8s" : "cni";
  const namespace = orchestrator === "k8s" ? podNamespace : (conf.namespace ?? DEFAULT_NAMESPACE);
  const spec: Record<string, unknown> = {
    node,
    orchestrator,
    endpoint: env.ifname,
    containerID: env.containerId,
  };
  if (orchestrator === "k8s") spec["pod"] = pod;
  const wepName = expectedWorkloadEndpointName(spec);
  if (typeof wepName !== "string") {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      "cannot name the workload endpoint",
      `missing ${wepName.missing.join(", ")}`,
    );
  }
  const id: EndpointIdentity = {
    node,
    orchestrator,
    namespace,
    containerId: env.containerId,
    endpoint: env.ifname,
    wepName,
    hostInterface: hostInterfaceName(conf.interfacePrefix, {
      namespace,
      wepName,
      containerId: env.containerId,
    }),
    handle: ipamHandle(conf.name, env.containerId),
  };
  if (orchestrator === "k8s") id.pod = pod;
  return id;
}
