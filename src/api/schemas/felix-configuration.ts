// FelixConfiguration: the agent's settings, cluster-wide ("default") or for
// one node ("node.<node name>"), which overrides the cluster's per field.
//
// Calico's FelixConfiguration has some 150 fields. Three groups here:
// - The fields twill's agent uses (logging, health, metrics, failsafe ports,
//   endpoint-to-host action, interfaces, routes, NAT, nftables), with their
//   types and defaults. Defaults are filled in only on "default": filling
//   them in on a node's resource would override the cluster's values.
//   Where twill's default differs from Calico's it is because the object is
//   twill's own (interface prefix, route protocol, log prefix, status path).
// - Settings that ask for encapsulation or encryption (ipipEnabled,
//   vxlanEnabled, wireguard*Enabled): accepted when false, refused when true,
//   since twill routes natively and does not encrypt.
// - Every other Calico field name (iptables, eBPF, XDP, tunnels, OpenStack,
//   debugging, Go runtime): accepted with any value and ignored, so Calico
//   manifests apply unchanged. Unknown names are still errors.
import { z } from "zod";
import { kindById } from "../kinds.js";
import { parseIP } from "../ip.js";
import {
  cidrString,
  durationString,
  ipAddress,
  nodeScopedConfigName,
  resourceSchema,
} from "./common.js";
import type { KindSchema } from "./common.js";

/** The route protocol number twill puts on the routes it programs (see `ip route ... proto`). */
export const TWILL_ROUTE_PROTOCOL = 116;

const LOG_LEVELS = ["Trace", "Debug", "Info", "Warning", "Error", "Fatal"] as const;

/** A failsafe port: always open to or from a host, whatever the policy. */
export interface FailsafePort {
  protocol: "TCP" | "UDP" | "SCTP";
  port: number;
  net?: string;
}

const failsafe = (protocol: FailsafePort["protocol"], port: number): FailsafePort => ({
  protocol,
  port,
});

/** Calico's default inbound failsafe ports: SSH, DHCP, BGP, etcd, Typha, Kubernetes API. */
export const DEFAULT_FAILSAFE_INBOUND: readonly FailsafePort[] = [
  failsafe("TCP", 22),
  failsafe("UDP", 68),
  failsafe("TCP", 179),
  failsafe("TCP", 2379),
  failsafe("TCP", 2380),
  failsafe("TCP", 5473),
  failsafe("TCP", 6443),
  failsafe("TCP", 6666),
  failsafe("TCP", 6667),
];

/** Calico's default outbound failsafe ports: DNS, DHCP, BGP, etcd, Typha, Kubernetes API. */
export const DEFAULT_FAILSAFE_OUTBOUND: readonly FailsafePort[] = [
  failsafe("UDP", 53),
  failsafe("UDP", 67),
  failsafe("TCP", 179),
  failsafe("TCP", 2379),
  failsafe("TCP", 2380),
  failsafe("TCP", 5473),
  failsafe("TCP", 6443),
  failsafe("TCP", 6666),
  failsafe("TCP", 6667),
];

/** Defaults filled into the FelixConfiguration named "default". */
export const FELIX_CONFIGURATION_DEFAULTS = {
  logSeverityScreen: "Info",
  logPrefix: "twill-packet",
  reportingInterval: "30s",
  reportingTTL: "90s",
  healthEnabled: false,
  healthHost: "localhost",
  healthPort: 9099,
  prometheusMetricsEnabled: false,
  prometheusMetricsPort: 9091,
  defaultEndpointToHostAction: "Drop",
  failsafeInboundHostPorts: DEFAULT_FAILSAFE_INBOUND,
  failsafeOutboundHostPorts: DEFAULT_FAILSAFE_OUTBOUND,
  interfacePrefix: "tw",
  interfaceExclude: "kube-ipvs0",
  interfaceRefreshInterval: "90s",
  mtuIfacePattern: "^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)",
  routeRefreshInterval: "90s",
  routeSource: "CalicoIPAM",
  routeSyncDisabled: false,
  deviceRouteProtocol: TWILL_ROUTE_PROTOCOL,
  removeExternalRoutes: true,
  ipForwarding: "Enabled",
  ipv6Support: true,
  netlinkTimeout: "10s",
  natOutgoingExclusions: "IPPoolsOnly",
  endpointReportingEnabled: false,
  endpointReportingDelay: "1s",
  endpointStatusPathPrefix: "/var/run/twill",
  nftablesRefreshInterval: "90s",
  nftablesFilterAllowAction: "Accept",
  nftablesFilterDenyAction: "Drop",
  nftablesMarkMask: 0xffff0000,
  disableConntrackInvalidCheck: false,
  allowIPIPPacketsFromWorkloads: false,
  allowVXLANPacketsFromWorkloads: false,
  workloadSourceSpoofing: "Disabled",
} as const;

type Defaults = typeof FELIX_CONFIGURATION_DEFAULTS;

/** A field with a default that applies to "default" only (documented, filled in by the resource transform). */
const dflt = <T extends z.ZodType>(
  schema: T,
  key: keyof Defaults,
  description: string,
  extra?: Record<string, unknown>,
) => schema.optional().meta({ description, default: FELIX_CONFIGURATION_DEFAULTS[key], ...extra });

const port = () => z.number().int().min(1).max(65535);

const familyAddress = (family: 4 | 6) =>
  ipAddress().superRefine((s, ctx) => {
    const ip = parseIP(s);
    if (ip && ip.family !== family) {
      ctx.addIssue({ code: "custom", message: `"${s}" is not an IPv${family} address` });
    }
  });

/** A regular expression (checked by compiling it). */
const regexString = () =>
  z.string().superRefine((s, ctx) => {
    try {
      new RegExp(s);
    } catch (err) {
      ctx.addIssue({
        code: "custom",
        message: `"${s}" is not a valid regular expression: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
  });

const failsafePortSchema = z.strictObject({
  protocol: z
    .string()
    .superRefine((s, ctx) => {
      if (!["TCP", "UDP", "SCTP"].includes(s.toUpperCase())) {
        ctx.addIssue({ code: "custom", message: `protocol "${s}" is not TCP, UDP or SCTP` });
      }
    })
    .transform((s) => s.toUpperCase() as FailsafePort["protocol"])
    .default("TCP")
    .meta({ description: "TCP, UDP or SCTP (any case; stored upper case).", defaultText: "TCP" }),
  port: port().describe("The port, 1-65535."),
  net: cidrString({ allowBareIP: true })
    .optional()
    .describe("Only for this peer range (e.g. 10.0.0.0/8); any address when omitted."),
});

const failsafeList = (
  key: "failsafeInboundHostPorts" | "failsafeOutboundHostPorts",
  description: string,
) =>
  z
    .array(failsafePortSchema)
    .optional()
    .meta({
      description,
      default: FELIX_CONFIGURATION_DEFAULTS[key],
      defaultText: FELIX_CONFIGURATION_DEFAULTS[key]
        .map((p) => `${p.protocol.toLowerCase()}:${p.port}`)
        .join(", "),
    });

/** A boolean that asks for a feature twill lacks: false is accepted, true refused. */
const unsupportedSwitch = (reason: string, description: string) =>
  z
    .boolean()
    .superRefine((on, ctx) => {
      if (on) ctx.addIssue({ code: "custom", message: `cannot be true: ${reason}` });
    })
    .optional()
    .describe(description);

/** "1024:65535" or a single port number, as Calico's natPortRange. */
const portRange = () =>
  z.union([z.number(), z.string()]).superRefine((v, ctx) => {
    const text = String(v);
    const m = /^([0-9]+)(?::([0-9]+))?$/.exec(text);
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!(lo >= 1 && hi <= 65535 && lo <= hi)) {
      ctx.addIssue({
        code: "custom",
        message: `port range ${JSON.stringify(v)} is invalid: use a port or "min:max" within 1-65535, min first`,
      });
    }
  });

// Calico field names twill accepts and ignores, grouped by why.
const IGNORED_GROUPS: readonly { why: string; fields: readonly string[] }[] = [
  {
    why: "An iptables setting; twill programs nftables only.",
    fields: [
      "chainInsertMode",
      "iptablesBackend",
      "iptablesFilterAllowAction",
      "iptablesFilterDenyAction",
      "iptablesLockFilePath",
      "iptablesLockProbeInterval",
      "iptablesLockTimeout",
      "iptablesMangleAllowAction",
      "iptablesMarkMask",
      "iptablesNATOutgoingInterfaceFilter",
      "iptablesPostWriteCheckInterval",
      "iptablesRefreshInterval",
      "ipsetsRefreshInterval",
      "maxIpsetSize",
      "kubeNodePortRanges",
      "featureDetectOverride",
    ],
  },
  {
    why: "An nftables setting twill does not need: it has no pre-DNAT policy and always uses nftables.",
    fields: ["nftablesMangleAllowAction", "nftablesMode"],
  },
  {
    why: "An eBPF or XDP dataplane setting; twill's dataplane is nftables and routing.",
    fields: [
      "bpfEnabled",
      "bpfAttachType",
      "bpfCTLBLogFilter",
      "bpfConnectTimeLoadBalancing",
      "bpfConnectTimeLoadBalancingEnabled",
      "bpfConntrackLogLevel",
      "bpfConntrackMode",
      "bpfConntrackTimeouts",
      "bpfDSROptoutCIDRs",
      "bpfDataIfacePattern",
      "bpfDisableGROForIfaces",
      "bpfDisableUnprivileged",
      "bpfEnforceRPF",
      "bpfExcludeCIDRsFromNAT",
      "bpfExportBufferSizeMB",
      "bpfExtToServiceConnmark",
      "bpfExternalServiceMode",
      "bpfForceTrackPacketsFromIfaces",
      "bpfHostConntrackBypass",
      "bpfHostNetworkedNATWithoutCTLB",
      "bpfKubeProxyEndpointSlicesEnabled",
      "bpfKubeProxyIptablesCleanupEnabled",
      "bpfKubeProxyMinSyncPeriod",
      "bpfL3IfacePattern",
      "bpfLogFilters",
      "bpfLogLevel",
      "bpfMapSizeConntrack",
      "bpfMapSizeConntrackCleanupQueue",
      "bpfMapSizeConntrackScaling",
      "bpfMapSizeIPSets",
      "bpfMapSizeIfState",
      "bpfMapSizeNATAffinity",
      "bpfMapSizeNATBackend",
      "bpfMapSizeNATFrontend",
      "bpfMapSizePerCpuConntrack",
      "bpfMapSizeRoute",
      "bpfPSNATPorts",
      "bpfPolicyDebugEnabled",
      "bpfProfiling",
      "bpfRedirectToPeer",
      "cgroupV2Path",
      "xdpEnabled",
      "xdpRefreshInterval",
      "genericXDPEnabled",
    ],
  },
  {
    why: "A tunnel setting; twill routes natively and has no tunnel devices.",
    fields: [
      "ipipMTU",
      "vxlanMTU",
      "vxlanMTUV6",
      "vxlanPort",
      "vxlanVNI",
      "externalNodesList",
      "programClusterRoutes",
    ],
  },
  {
    why: "A WireGuard setting; twill does not encrypt.",
    fields: [
      "wireguardInterfaceName",
      "wireguardInterfaceNameV6",
      "wireguardKeepAlive",
      "wireguardListeningPort",
      "wireguardListeningPortV6",
      "wireguardMTU",
      "wireguardMTUV6",
      "wireguardRoutingRulePriority",
      "wireguardThreadingEnabled",
      "prometheusWireGuardMetricsEnabled",
    ],
  },
  {
    why: "A setting for Calico's extra route tables; twill uses the main table only.",
    fields: ["routeTableRange", "routeTableRanges"],
  },
  {
    why: "A logging setting for Felix's files and syslog; twill's agent writes structured logs to its own output instead.",
    fields: [
      "logFilePath",
      "logSeverityFile",
      "logSeveritySys",
      "logDebugFilenameRegex",
      "debugDisableLogDropping",
    ],
  },
  {
    why: "A debugging, profiling or Go runtime setting of Felix.",
    fields: [
      "debugHost",
      "debugMemoryProfilePath",
      "debugPort",
      "debugSimulateCalcGraphHangAfter",
      "debugSimulateDataplaneApplyDelay",
      "debugSimulateDataplaneHangAfter",
      "dataplaneWatchdogTimeout",
      "healthTimeoutOverrides",
      "goGCThreshold",
      "goMaxProcs",
      "goMemoryLimitMB",
      "prometheusGoMetricsEnabled",
      "prometheusProcessMetricsEnabled",
    ],
  },
  {
    why: "A setting for an environment or integration twill does not have (OpenStack, AWS, Windows, Istio, flow logs, external dataplane drivers, usage reporting).",
    fields: [
      "awsSrcDstCheck",
      "dataplaneDriver",
      "useInternalDataplaneDriver",
      "featureGates",
      "floatingIPs",
      "flowLogsCollectorDebugTrace",
      "flowLogsFlushInterval",
      "flowLogsGoldmaneServer",
      "flowLogsLocalReporter",
      "flowLogsPolicyEvaluationMode",
      "metadataAddr",
      "metadataPort",
      "openstackRegion",
      "policySyncPathPrefix",
      "requireMTUFile",
      "serviceLoopPrevention",
      "sidecarAccelerationEnabled",
      "usageReportingEnabled",
      "usageReportingInitialDelay",
      "usageReportingInterval",
      "windowsManageFirewallRules",
    ],
  },
];

/** Every Calico FelixConfiguration field that twill accepts and ignores. */
export const IGNORED_FELIX_FIELDS: readonly string[] = IGNORED_GROUPS.flatMap((g) => g.fields);

const ignoredFields: Record<string, z.ZodType> = {};
for (const group of IGNORED_GROUPS) {
  for (const field of group.fields) {
    ignoredFields[field] = z
      .unknown()
      .optional()
      .meta({ description: `${group.why} Recognised; twill ignores it.`, ignored: true });
  }
}

const felixFields = {
  logSeverityScreen: dflt(
    z.enum(LOG_LEVELS),
    "logSeverityScreen",
    "How much the agent logs: Trace, Debug, Info, Warning, Error or Fatal.",
  ),
  logPrefix: dflt(
    z
      .string()
      .max(127)
      .regex(/^[^"\\\n]*$/, "no double quotes, backslashes or newlines"),
    "logPrefix",
    "Prefix of the kernel log lines written by policy rules with action Log.",
  ),
  reportingInterval: dflt(
    durationString(),
    "reportingInterval",
    "How often the agent writes its status to the datastore; 0 turns it off.",
  ),
  reportingTTL: dflt(durationString(), "reportingTTL", "How long a status report stays valid."),
  healthEnabled: dflt(z.boolean(), "healthEnabled", "Serve /liveness and /readiness over HTTP."),
  healthHost: dflt(z.string().min(1), "healthHost", "Address the health server listens on."),
  healthPort: dflt(port(), "healthPort", "TCP port of the health server."),
  prometheusMetricsEnabled: dflt(
    z.boolean(),
    "prometheusMetricsEnabled",
    "Serve Prometheus metrics over HTTP.",
  ),
  prometheusMetricsHost: z
    .string()
    .regex(/^[a-zA-Z0-9:._+-]{1,64}$/, "a host name or address of at most 64 characters")
    .optional()
    .describe("Address the metrics server listens on; every address when omitted."),
  prometheusMetricsPort: dflt(port(), "prometheusMetricsPort", "TCP port of the metrics server."),
  defaultEndpointToHostAction: dflt(
    z.enum(["Drop", "Return", "Accept"]),
    "defaultEndpointToHostAction",
    "What happens to traffic from a workload to its own host after the workload's egress policy: Drop, Return (to the host's own input rules) or Accept.",
  ),
  failsafeInboundHostPorts: failsafeList(
    "failsafeInboundHostPorts",
    "Ports on which hosts always accept traffic, whatever the host endpoint policy, so a bad policy cannot cut a host off. [] opens none.",
  ),
  failsafeOutboundHostPorts: failsafeList(
    "failsafeOutboundHostPorts",
    "Ports to which hosts may always send traffic, whatever the host endpoint policy. [] opens none.",
  ),
  interfacePrefix: dflt(
    z.string().superRefine((s, ctx) => {
      for (const p of s.split(",")) {
        if (!/^[a-zA-Z0-9_.-]{1,14}$/.test(p)) {
          ctx.addIssue({
            code: "custom",
            message: `interface prefix "${p}" is invalid: 1-14 of letters, digits, '_', '.' and '-' (comma-separated for several)`,
          });
        }
      }
    }),
    "interfacePrefix",
    "Name prefix of workload interfaces on the host (several comma-separated). twill names its own interfaces with it; others with it but unknown to the agent get no traffic.",
  ),
  interfaceExclude: dflt(
    z.string().superRefine((s, ctx) => {
      for (const item of s.split(",")) {
        if (item.length > 2 && item.startsWith("/") && item.endsWith("/")) {
          try {
            new RegExp(item.slice(1, -1));
          } catch {
            ctx.addIssue({
              code: "custom",
              message: `"${item}" is not a valid regular expression`,
            });
          }
        } else if (!/^[a-zA-Z0-9_.:@+-]{1,15}$/.test(item)) {
          ctx.addIssue({
            code: "custom",
            message: `"${item}" is neither an interface name nor a /regex/`,
          });
        }
      }
    }),
    "interfaceExclude",
    "Comma-separated interface names, or /regular expressions/, that are never treated as host endpoints.",
  ),
  interfaceRefreshInterval: dflt(
    durationString(),
    "interfaceRefreshInterval",
    "How often interfaces are rescanned besides watching them; 0 turns rescans off.",
  ),
  mtuIfacePattern: dflt(
    regexString(),
    "mtuIfacePattern",
    "Regular expression of host interfaces whose MTU decides the workload MTU.",
  ),
  routeRefreshInterval: dflt(
    durationString(),
    "routeRefreshInterval",
    "How often routes are read back from the kernel and repaired; 0 turns it off.",
  ),
  routeSource: dflt(
    z.enum(["WorkloadIPs", "CalicoIPAM"]),
    "routeSource",
    "Where routes come from: IPAM blocks and their affinities (CalicoIPAM) or the addresses of workload endpoints (WorkloadIPs).",
  ),
  routeSyncDisabled: dflt(
    z.boolean(),
    "routeSyncDisabled",
    "When true, the agent programs no routes at all (policy only).",
  ),
  deviceRouteProtocol: dflt(
    z.number().int().min(1).max(255),
    "deviceRouteProtocol",
    "Route protocol number on the routes the agent programs, which is how it recognises its own routes. twill's default is its own number, not Calico's 3 (boot).",
  ),
  deviceRouteSourceAddress: familyAddress(4)
    .optional()
    .describe(
      "IPv4 source address hint on the routes to workloads; the kernel chooses when omitted.",
    ),
  deviceRouteSourceAddressIPv6: familyAddress(6)
    .optional()
    .describe(
      "IPv6 source address hint on the routes to workloads; the kernel chooses when omitted.",
    ),
  removeExternalRoutes: dflt(
    z.boolean(),
    "removeExternalRoutes",
    "Remove routes to workload interfaces that the agent did not program.",
  ),
  ipForwarding: dflt(
    z.enum(["Enabled", "Disabled"]),
    "ipForwarding",
    "Whether the agent turns on IP forwarding in the host's sysctls. Disable only on hosts that run no workloads.",
  ),
  ipv6Support: dflt(z.boolean(), "ipv6Support", "Program IPv6 as well as IPv4."),
  netlinkTimeout: dflt(
    durationString(),
    "netlinkTimeout",
    "How long to wait for the kernel to answer over netlink.",
  ),
  natOutgoingAddress: familyAddress(4)
    .optional()
    .describe(
      "Source address for masqueraded traffic of natOutgoing pools; the outgoing interface's address when omitted.",
    ),
  natPortRange: portRange()
    .optional()
    .describe(
      'Source ports used for masqueraded traffic, e.g. "32768:65535"; the kernel chooses when omitted.',
    ),
  natOutgoingExclusions: dflt(
    z.enum(["IPPoolsOnly", "IPPoolsAndHostIPs"]),
    "natOutgoingExclusions",
    "Destinations that natOutgoing never masquerades to: other pools only (IPPoolsOnly) or pools and hosts (IPPoolsAndHostIPs).",
  ),
  endpointReportingEnabled: dflt(
    z.boolean(),
    "endpointReportingEnabled",
    "Write each endpoint's status to the datastore.",
  ),
  endpointReportingDelay: dflt(
    durationString(),
    "endpointReportingDelay",
    "How long endpoint status reports are held back and merged.",
  ),
  endpointStatusPathPrefix: dflt(
    z
      .string()
      .refine(
        (s) => s === "" || s.startsWith("/"),
        "must be an absolute path, or empty to turn it off",
      ),
    "endpointStatusPathPrefix",
    'Directory where the agent writes a file per programmed endpoint, for the CNI plugin to wait on; "" turns it off.',
  ),
  nftablesRefreshInterval: dflt(
    durationString(),
    "nftablesRefreshInterval",
    "How often twill's nftables table is read back and repaired; 0 turns it off.",
  ),
  nftablesFilterAllowAction: dflt(
    z.enum(["Accept", "Return"]),
    "nftablesFilterAllowAction",
    "What allowed traffic gets: Accept (final) or Return (on to the host's other nftables rules).",
  ),
  nftablesFilterDenyAction: dflt(
    z.enum(["Drop", "Reject"]),
    "nftablesFilterDenyAction",
    "What denied traffic gets: Drop (silently) or Reject (with an ICMP error or TCP reset).",
  ),
  nftablesMarkMask: dflt(
    z.number().int().min(0).max(0xffffffff),
    "nftablesMarkMask",
    "Packet mark bits the agent may use (a 32-bit mask); must not clash with other users of marks on the host.",
    { defaultText: "0xffff0000" },
  ),
  disableConntrackInvalidCheck: dflt(
    z.boolean(),
    "disableConntrackInvalidCheck",
    "When true, packets conntrack marks invalid are not dropped (for asymmetric multi-NIC hosts).",
  ),
  allowIPIPPacketsFromWorkloads: dflt(
    z.boolean(),
    "allowIPIPPacketsFromWorkloads",
    "Let workloads send IP-in-IP packets; dropped by default.",
  ),
  allowVXLANPacketsFromWorkloads: dflt(
    z.boolean(),
    "allowVXLANPacketsFromWorkloads",
    "Let workloads send VXLAN packets; dropped by default.",
  ),
  workloadSourceSpoofing: dflt(
    z.enum(["Disabled", "Any"]),
    "workloadSourceSpoofing",
    "Whether workloads may use other source addresses when their endpoint allows it (Any) or never (Disabled).",
  ),
  ipipEnabled: unsupportedSwitch(
    "twill routes natively and has no IP-in-IP tunnel",
    "Calico's IP-in-IP device switch. Accepted when false; twill has no overlay.",
  ),
  vxlanEnabled: unsupportedSwitch(
    "twill routes natively and has no VXLAN tunnel",
    "Calico's IPv4 VXLAN device switch. Accepted when false; twill has no overlay.",
  ),
  wireguardEnabled: unsupportedSwitch(
    "twill does not encrypt traffic (no WireGuard)",
    "Calico's IPv4 WireGuard switch. Accepted when false; twill does not encrypt.",
  ),
  wireguardEnabledV6: unsupportedSwitch(
    "twill does not encrypt traffic (no WireGuard)",
    "Calico's IPv6 WireGuard switch. Accepted when false; twill does not encrypt.",
  ),
  wireguardHostEncryptionEnabled: unsupportedSwitch(
    "twill does not encrypt traffic (no WireGuard)",
    "Calico's host-to-host WireGuard switch. Accepted when false; twill does not encrypt.",
  ),
};

/** The Calico FelixConfiguration fields twill types and acts on (or refuses, for overlays and encryption). */
export const TWILL_FELIX_FIELDS: readonly string[] = Object.keys(felixFields);

export const felixConfigurationSpecSchema = z
  .strictObject({ ...felixFields, ...ignoredFields })
  .prefault({})
  .describe(
    'Agent settings for the cluster (name "default") or overrides for one node (name "node.<node name>"). Defaults are filled in on "default" only.',
  );

export type FelixConfigurationSpec = z.output<typeof felixConfigurationSpecSchema>;

function withDefaults(spec: FelixConfigurationSpec): FelixConfigurationSpec {
  const filled: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(FELIX_CONFIGURATION_DEFAULTS)) {
    filled[k] = Array.isArray(v) ? v.map((p: FailsafePort) => ({ ...p })) : v;
  }
  return { ...filled, ...spec } as FelixConfigurationSpec;
}

export const felixConfigurationSchema = resourceSchema(
  kindById("FelixConfiguration"),
  felixConfigurationSpecSchema,
  { name: nodeScopedConfigName("FelixConfiguration") },
).transform((res) =>
  res.metadata.name === "default" ? { ...res, spec: withDefaults(res.spec ?? {}) } : res,
);

export type FelixConfiguration = z.output<typeof felixConfigurationSchema>;

export const felixConfigurationKind: KindSchema = {
  schema: felixConfigurationSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "FelixConfiguration",
    metadata: { name: "default" },
    spec: {
      logSeverityScreen: "Info",
      defaultEndpointToHostAction: "Accept",
      prometheusMetricsEnabled: true,
      failsafeInboundHostPorts: [
        { protocol: "TCP", port: 22 },
        { protocol: "TCP", port: 179 },
        { protocol: "TCP", port: 2379, net: "10.0.0.0/8" },
      ],
      natPortRange: "32768:65535",
      bpfLogLevel: "",
    },
  },
};
