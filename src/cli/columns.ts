// The columns `twill get` shows for each kind, in the spirit of kubectl and
// calicoctl: NAME first, then the handful of fields an operator looks for,
// with `-o wide` adding a few more. Pure.
import type { KindId } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";

export interface Column {
  header: string;
  value(resource: Resource): string;
}

export const NONE = "<none>";

/** The value at a dotted path inside `obj`, or undefined. */
function at(obj: unknown, path: string): unknown {
  let v: unknown = obj;
  for (const part of path.split(".")) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A cell for any value: lists comma-joined, absent or empty as <none>. */
export function cell(v: unknown): string {
  if (v === undefined || v === null || v === "") return NONE;
  if (Array.isArray(v))
    return v.length === 0
      ? NONE
      : v.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(",");
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length === 0 ? NONE : entries.map(([k, x]) => `${k}=${String(x)}`).join(",");
  }
  return String(v);
}

const field = (header: string, path: string): Column => ({
  header,
  value: (r) => cell(at(r, path)),
});
const computed = (header: string, fn: (r: Resource) => unknown): Column => ({
  header,
  value: (r) => cell(fn(r)),
});
const count = (header: string, path: string): Column => ({
  header,
  value: (r) => {
    const v = at(r, path);
    return String(Array.isArray(v) ? v.length : 0);
  },
});
/** Calico selectors: empty means every endpoint. */
const selector = (header: string, path: string): Column => ({
  header,
  value: (r) => {
    const v = at(r, path);
    return typeof v === "string" && v.trim() !== "" ? v : "all()";
  },
});
const labels: Column = field("LABELS", "metadata.labels");

/** kubectl's rendering of a Kubernetes label selector. */
function labelSelector(v: unknown): string {
  if (typeof v !== "object" || v === null) return NONE;
  const sel = v as {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  };
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, x]) => `${k}=${x}`);
  for (const e of sel.matchExpressions ?? []) {
    const values = e.values?.join(",") ?? "";
    switch (e.operator) {
      case "In":
        parts.push(`${e.key} in (${values})`);
        break;
      case "NotIn":
        parts.push(`${e.key} notin (${values})`);
        break;
      case "Exists":
        parts.push(e.key);
        break;
      case "DoesNotExist":
        parts.push(`!${e.key}`);
        break;
      default:
        parts.push(`${e.key} ${e.operator} (${values})`);
    }
  }
  return parts.length === 0 ? NONE : parts.join(",");
}

const policy = {
  normal: [
    field("ORDER", "spec.order"),
    field("TIER", "spec.tier"),
    selector("SELECTOR", "spec.selector"),
  ],
  wide: [
    field("TYPES", "spec.types"),
    count("INGRESS", "spec.ingress"),
    count("EGRESS", "spec.egress"),
  ],
};
const networkSet = { normal: [field("NETS", "spec.nets")], wide: [labels] };

/** For each kind: the columns after NAME, and the extra ones `-o wide` appends. */
export const COLUMNS: Record<KindId, { normal: Column[]; wide: Column[] }> = {
  Node: {
    normal: [
      computed(
        "ASN",
        (r) => at(r, "spec.bgp.asNumber") ?? (at(r, "spec.bgp") ? "(global)" : undefined),
      ),
      field("IPV4", "spec.bgp.ipv4Address"),
      field("IPV6", "spec.bgp.ipv6Address"),
    ],
    wide: [field("RR-CLUSTER-ID", "spec.bgp.routeReflectorClusterID"), labels],
  },
  WorkloadEndpoint: {
    normal: [
      field("NODE", "spec.node"),
      field("WORKLOAD", "spec.workload"),
      field("NETWORKS", "spec.ipNetworks"),
      field("INTERFACE", "spec.interfaceName"),
    ],
    wide: [
      field("ORCHESTRATOR", "spec.orchestrator"),
      field("MAC", "spec.mac"),
      field("PROFILES", "spec.profiles"),
      labels,
    ],
  },
  HostEndpoint: {
    normal: [
      field("NODE", "spec.node"),
      field("INTERFACE", "spec.interfaceName"),
      field("EXPECTEDIPS", "spec.expectedIPs"),
    ],
    wide: [field("PROFILES", "spec.profiles"), labels],
  },
  Profile: {
    normal: [],
    wide: [
      field("LABELS-TO-APPLY", "spec.labelsToApply"),
      count("INGRESS", "spec.ingress"),
      count("EGRESS", "spec.egress"),
    ],
  },
  Tier: {
    normal: [field("ORDER", "spec.order")],
    wide: [field("DEFAULTACTION", "spec.defaultAction")],
  },
  GlobalNetworkPolicy: {
    normal: policy.normal,
    wide: [...policy.wide, field("APPLYONFORWARD", "spec.applyOnForward")],
  },
  NetworkPolicy: policy,
  GlobalNetworkSet: networkSet,
  NetworkSet: networkSet,
  IPPool: {
    normal: [
      field("CIDR", "spec.cidr"),
      field("BLOCKSIZE", "spec.blockSize"),
      field("NAT", "spec.natOutgoing"),
      computed("DISABLED", (r) => at(r, "spec.disabled") ?? false),
    ],
    wide: [selector("NODESELECTOR", "spec.nodeSelector"), field("ALLOWEDUSES", "spec.allowedUses")],
  },
  IPReservation: { normal: [field("CIDRS", "spec.reservedCIDRs")], wide: [] },
  IPAMConfiguration: {
    normal: [
      field("STRICTAFFINITY", "spec.strictAffinity"),
      field("MAXBLOCKSPERHOST", "spec.maxBlocksPerHost"),
    ],
    wide: [],
  },
  BGPConfiguration: {
    normal: [
      field("ASN", "spec.asNumber"),
      field("MESH", "spec.nodeToNodeMeshEnabled"),
      field("LOGSEVERITY", "spec.logSeverityScreen"),
    ],
    wide: [
      computed("SERVICECLUSTERIPS", (r) =>
        (at(r, "spec.serviceClusterIPs") as { cidr?: string }[] | undefined)?.map((x) => x.cidr),
      ),
      computed("SERVICEEXTERNALIPS", (r) =>
        (at(r, "spec.serviceExternalIPs") as { cidr?: string }[] | undefined)?.map((x) => x.cidr),
      ),
    ],
  },
  // A peering is either explicit (node, peerIP) or by selectors; show both.
  BGPPeer: {
    normal: [
      field("PEERIP", "spec.peerIP"),
      field("ASN", "spec.asNumber"),
      field("NODE", "spec.node"),
      field("NODESELECTOR", "spec.nodeSelector"),
      field("PEERSELECTOR", "spec.peerSelector"),
    ],
    wide: [
      field("KEEPORIGINALNEXTHOP", "spec.keepOriginalNextHop"),
      field("LOCALASN", "spec.localASNumber"),
    ],
  },
  FelixConfiguration: { normal: [], wide: [field("LOGSEVERITY", "spec.logSeverityScreen")] },
  ClusterInformation: {
    normal: [field("CLUSTERGUID", "spec.clusterGUID"), field("READY", "spec.datastoreReady")],
    wide: [field("CLUSTERTYPE", "spec.clusterType"), field("CALICOVERSION", "spec.calicoVersion")],
  },
  "NetworkPolicy.networking.k8s.io": {
    normal: [computed("POD-SELECTOR", (r) => labelSelector(at(r, "spec.podSelector")))],
    wide: [field("POLICYTYPES", "spec.policyTypes")],
  },
};

/** Every column for a table of `kind`: [NAMESPACE,] NAME, the kind's own, and the wide ones. */
export function columnsFor(
  kindId: KindId,
  options: { wide: boolean; withNamespace: boolean },
): Column[] {
  const own = COLUMNS[kindId];
  return [
    ...(options.withNamespace ? [field("NAMESPACE", "metadata.namespace")] : []),
    { header: "NAME", value: (r) => r.metadata.name },
    ...own.normal,
    ...(options.wide ? own.wide : []),
  ];
}
