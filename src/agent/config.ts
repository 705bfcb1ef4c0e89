// The agent's configuration: ONE typed table. Each row names a setting, its
// type, default, flag, environment variable, whether FelixConfiguration may
// set it, and what it does. The table drives parsing (config-types.ts),
// precedence (resolveConfig), the `twill agent` flags (cli/commands/agent.ts)
// and the reference docs (gen-config-docs.ts → docs/agent-config.md).
//
// Precedence, highest first:
//
//   flag  >  environment TWILL_*  >  config file (YAML/JSON, --config)
//         >  FelixConfiguration "node.<nodeName>"  >  FelixConfiguration "default"
//         >  built-in default
//
// An empty flag or environment value counts as not given (as in
// datastore/connect.ts). A bad value from a flag, the environment or the
// file is an error naming the source and the setting: the operator's own
// mistake, the agent refuses to start. A bad value in a FelixConfiguration
// (which the API validates on write, so rare) is a warning and that
// source is skipped for the setting: one bad cluster-wide resource must not
// stop every agent.
import YAML from "yaml";
import type { FailsafePort } from "../api/schemas/felix-configuration.js";
import {
  DEFAULT_FAILSAFE_INBOUND,
  DEFAULT_FAILSAFE_OUTBOUND,
  FELIX_CONFIGURATION_DEFAULTS as FELIX,
} from "../api/schemas/felix-configuration.js";
import { TwillError } from "../util/errors.js";
import {
  addressType,
  asNumberType,
  booleanType,
  durationType,
  enumType,
  failsafePortsType,
  integerType,
  optional,
  stringType,
} from "./config-types.js";
import type { ValueType } from "./config-types.js";

/** What a default may depend on. */
export interface DefaultContext {
  hostname: string;
}

interface ParamSpec<T> {
  type: ValueType<T>;
  default: T | ((ctx: DefaultContext) => T);
  /** The default in words, when it is computed. */
  defaultText?: string;
  description: string;
  /** FelixConfiguration may set it (field of the same name). */
  felix?: boolean;
  /** A config file may set it (default true). */
  file?: boolean;
  /** The flag; derived from the name (`nodeName` → `--node-name`) unless given; null for none. */
  flag?: string | null;
  /** Defined on the root `twill` command (the shared --etcd-* flags). */
  globalFlag?: boolean;
  /** Read once at start: a change in FelixConfiguration takes effect on restart. */
  restart?: boolean;
  group: ConfigGroup;
}

export type ConfigGroup =
  "process" | "datastore" | "node" | "bgp" | "logging" | "health" | "dataplane";

function param<T>(spec: ParamSpec<T>): ParamSpec<T> {
  return spec;
}

const NAME_15 = {
  pattern: /^[a-zA-Z0-9_.-]{1,14}$/,
  rule: "1-14 of letters, digits, '_', '.' and '-'",
};
const LOG_LEVELS = ["Trace", "Debug", "Info", "Warning", "Error", "Fatal"] as const;
export type LogSeverity = (typeof LOG_LEVELS)[number];

const TABLE = {
  // --- The process.
  configFile: param({
    group: "process",
    type: optional(stringType()),
    default: undefined,
    flag: "--config",
    file: false,
    description: "A YAML or JSON file of settings named as in this table (camelCase keys).",
  }),
  nodeName: param({
    group: "process",
    type: stringType({
      pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
      rule: "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')",
    }),
    default: (ctx) => ctx.hostname,
    defaultText: "the host name",
    description:
      "This host's name: endpoints whose `node` is this name are local, and it names the Node resource and the FelixConfiguration `node.<name>`.",
  }),
  maxApplyFailures: param({
    group: "process",
    type: integerType(1, 1000),
    default: 5,
    description:
      "Consecutive failed dataplane applies after which the agent exits non-zero rather than leave policy unprogrammed.",
  }),
  minApplyInterval: param({
    group: "process",
    type: durationType(),
    default: 50,
    description:
      "Least time between two dataplane applies: a burst of datastore changes is coalesced into one kernel transaction.",
  }),
  // --- The datastore (the same flags as every twill command).
  etcdEndpoints: param({
    group: "datastore",
    type: stringType(),
    // datastore/connect.ts's DEFAULT_ETCD_ENDPOINT (a test keeps them equal);
    // not imported, so `twill --help` does not load the etcd client.
    default: "http://127.0.0.1:2379",
    globalFlag: true,
    description:
      "etcd endpoints, comma-separated (several are one cluster): http://host:port, https://host:port, or unix:///path for a socket.",
  }),
  etcdCaCertFile: param({
    group: "datastore",
    type: optional(stringType()),
    default: undefined,
    globalFlag: true,
    description: "CA certificate (PEM file) for TLS to etcd.",
  }),
  etcdCertFile: param({
    group: "datastore",
    type: optional(stringType()),
    default: undefined,
    globalFlag: true,
    description: "Client certificate (PEM file) for TLS to etcd.",
  }),
  etcdKeyFile: param({
    group: "datastore",
    type: optional(stringType()),
    default: undefined,
    globalFlag: true,
    description: "Client key (PEM file) for TLS to etcd.",
  }),
  etcdUsername: param({
    group: "datastore",
    type: optional(stringType()),
    default: undefined,
    globalFlag: true,
    description: "etcd user name.",
  }),
  etcdPassword: param({
    group: "datastore",
    type: optional(stringType()),
    default: undefined,
    globalFlag: true,
    description: "etcd password.",
  }),
  // --- This host's Node resource.
  nodeIPv4: param({
    group: "node",
    type: optional(addressType(4)),
    default: undefined,
    description:
      "This host's IPv4 address with its subnet (`10.0.0.1/24`), as Calico's Node `spec.bgp.ipv4Address`: written to its Node (`spec.bgp.ipv4Address` and `spec.addresses`); BIRD's router ID and the source of its IPv4 sessions. Kept as stored when not given.",
  }),
  nodeIPv6: param({
    group: "node",
    type: optional(addressType(6)),
    default: undefined,
    description:
      "This host's IPv6 address with its subnet (`fd00::1/64`), written to `spec.bgp.ipv6Address`: the source of its IPv6 sessions. Kept as stored when not given.",
  }),
  asNumber: param({
    group: "node",
    type: optional(asNumberType()),
    default: undefined,
    description:
      "This host's AS number, written to `spec.bgp.asNumber`; the cluster's when not given.",
  }),
  // --- BGP: BIRD, supervised by the agent.
  bgpEnabled: param({
    group: "bgp",
    type: booleanType(),
    default: true,
    description:
      "Run BIRD and configure it from the datastore (the node-to-node mesh, BGPPeers, this host's blocks). Off: routes between hosts are someone else's business.",
  }),
  birdDir: param({
    group: "bgp",
    type: optional(stringType({ pattern: /^\/[^\0\n]*$/, rule: "an absolute path" })),
    default: undefined,
    defaultText: "/var/run/twill/bird/<nodeName>",
    description:
      "Directory of this node's BIRD: `bird.conf`, the control socket `bird.ctl`, `bird.pid` and `bird.log`. One per node: several nodes on one machine must not share it.",
  }),
  birdBinary: param({
    group: "bgp",
    type: stringType(),
    default: "bird",
    description: "The BIRD 2 executable (looked up on PATH unless a path).",
  }),
  bgpSecretsDir: param({
    group: "bgp",
    type: stringType({ pattern: /^\/[^\0\n]*$/, rule: "an absolute path" }),
    default: "/etc/twill/bgp-secrets",
    description:
      "Where BGP passwords' `secretKeyRef`s are looked up: `<dir>/<secret name>/<key>`, one file per key, as a Kubernetes Secret volume is mounted. Read when the agent starts.",
  }),
  birdStopOnExit: param({
    group: "bgp",
    type: booleanType(),
    default: false,
    description:
      "Shut BIRD down when the agent stops. By default BIRD keeps running, so an agent restart withdraws no route; the next agent adopts it.",
  }),
  // --- Logging.
  logSeverityScreen: param({
    group: "logging",
    type: enumType(LOG_LEVELS),
    default: FELIX.logSeverityScreen,
    felix: true,
    description: "Least severity the agent logs (JSON lines on standard output).",
  }),
  reportingInterval: param({
    group: "logging",
    type: durationType(),
    default: 30_000,
    felix: true,
    description:
      "How often the agent logs a summary line (sync state, endpoints, policies, applies); 0 turns it off.",
  }),
  // --- Health and metrics.
  healthHost: param({
    group: "health",
    type: stringType({ pattern: /^[a-zA-Z0-9:._-]{1,253}$/, rule: "a host name or address" }),
    default: "127.0.0.1",
    felix: true,
    restart: true,
    description: "Address of the HTTP server for /livez, /readyz and /metrics (always on).",
  }),
  healthPort: param({
    group: "health",
    type: integerType(0, 65535),
    default: 9099,
    felix: true,
    restart: true,
    description:
      "TCP port of the HTTP server for /livez, /readyz and /metrics; 0 picks a free one.",
  }),
  // --- The dataplane.
  interfacePrefix: param({
    group: "dataplane",
    type: stringType(NAME_15),
    default: FELIX.interfacePrefix,
    felix: true,
    description:
      "Name prefix of workload interfaces on the host (one prefix; Calico's comma-separated list is not supported). An interface with it that the agent does not know gets no traffic.",
  }),
  defaultEndpointToHostAction: param({
    group: "dataplane",
    type: enumType(["Drop", "Return", "Accept"] as const),
    default: FELIX.defaultEndpointToHostAction,
    felix: true,
    description:
      "Traffic from a workload to its own host, after the workload's egress policy: Drop, Return (to the host's other rules) or Accept.",
  }),
  failsafeInboundHostPorts: param({
    group: "dataplane",
    type: failsafePortsType(),
    default: DEFAULT_FAILSAFE_INBOUND.map((p) => ({ ...p })) as FailsafePort[],
    felix: true,
    description:
      "Ports on which the host always accepts traffic, whatever the host endpoint policy (`none` for none).",
  }),
  failsafeOutboundHostPorts: param({
    group: "dataplane",
    type: failsafePortsType(),
    default: DEFAULT_FAILSAFE_OUTBOUND.map((p) => ({ ...p })) as FailsafePort[],
    felix: true,
    description:
      "Ports to which the host may always send, whatever the host endpoint policy (`none` for none).",
  }),
  logPrefix: param({
    group: "dataplane",
    type: stringType({
      pattern: /^[^"\\\n]{0,127}$/,
      rule: "at most 127 characters, no double quotes, backslashes or newlines",
    }),
    default: FELIX.logPrefix,
    felix: true,
    description: "Prefix of the kernel log lines written by rules with action Log.",
  }),
  ipv6Support: param({
    group: "dataplane",
    type: booleanType(),
    default: FELIX.ipv6Support,
    felix: true,
    description: "Program IPv6 (routes, sysctls, nftables rules) as well as IPv4.",
  }),
  ipForwarding: param({
    group: "dataplane",
    type: enumType(["Enabled", "Disabled"] as const),
    default: FELIX.ipForwarding,
    felix: true,
    description: "Whether the agent turns IP forwarding on in the host's sysctls.",
  }),
  deviceRouteProtocol: param({
    group: "dataplane",
    type: integerType(1, 255),
    default: FELIX.deviceRouteProtocol,
    felix: true,
    description:
      "Route protocol number on the workload routes the agent programs; it owns exactly the routes with this number.",
  }),
  routeSyncDisabled: param({
    group: "dataplane",
    type: booleanType(),
    default: FELIX.routeSyncDisabled,
    felix: true,
    description: "When true, the agent programs no routes (policy only).",
  }),
  routeRefreshInterval: param({
    group: "dataplane",
    type: durationType(),
    default: 90_000,
    felix: true,
    description: "How often routes are read back from the kernel and repaired; 0 turns it off.",
  }),
  interfaceRefreshInterval: param({
    group: "dataplane",
    type: durationType(),
    default: 90_000,
    felix: true,
    restart: true,
    description:
      "How often interfaces are listed again besides watching them (`ip monitor link`); 0 turns it off.",
  }),
  nftablesRefreshInterval: param({
    group: "dataplane",
    type: durationType(),
    default: 90_000,
    felix: true,
    description: "How often the `inet twill` table is read back and repaired; 0 turns it off.",
  }),
  workloadSourceSpoofing: param({
    group: "dataplane",
    type: enumType(["Disabled", "Any"] as const),
    default: FELIX.workloadSourceSpoofing,
    felix: true,
    description:
      "Whether a workload endpoint's allowSpoofedSourcePrefixes is honoured (Any; workload interfaces then get loose rp_filter) or ignored (Disabled).",
  }),
};

type Table = typeof TABLE;
export type ConfigName = keyof Table;

/** The agent's settings, typed from the table. Durations are milliseconds. */
export type AgentConfig = {
  [K in ConfigName]: Table[K] extends ParamSpec<infer T> ? T : never;
};

export interface ConfigParam {
  name: ConfigName;
  group: ConfigGroup;
  type: ValueType<unknown>;
  default: unknown;
  defaultText: string;
  description: string;
  felix: boolean;
  file: boolean;
  /** The flag, e.g. "--node-name"; undefined for none. */
  flag: string | undefined;
  globalFlag: boolean;
  env: string;
  restart: boolean;
}

const kebab = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();

/** The table as rows, in the order the reference lists them. */
export const CONFIG_PARAMS: readonly ConfigParam[] = Object.entries(TABLE).map(
  ([name, raw]): ConfigParam => {
    const spec = raw as ParamSpec<unknown>;
    const flag = spec.flag === null ? undefined : (spec.flag ?? `--${kebab(name)}`);
    const dflt = spec.default;
    return {
      name: name as ConfigName,
      group: spec.group,
      type: spec.type,
      default: dflt,
      defaultText:
        spec.defaultText ??
        (typeof dflt === "function"
          ? "(computed)"
          : dflt === undefined
            ? ""
            : spec.type.format(dflt)),
      description: spec.description,
      felix: spec.felix ?? false,
      file: spec.file ?? true,
      flag,
      globalFlag: spec.globalFlag ?? false,
      env: `TWILL_${kebab(name).replace(/-/g, "_").toUpperCase()}`,
      restart: spec.restart ?? !(spec.felix ?? false),
    };
  },
);

const BY_NAME = new Map<string, ConfigParam>(CONFIG_PARAMS.map((p) => [p.name, p]));

export function configParam(name: ConfigName): ConfigParam {
  const p = BY_NAME.get(name);
  if (!p) throw new TwillError("Internal", `no config setting "${name}"`);
  return p;
}

/** A FelixConfiguration's spec, with the resource's name for messages. */
export interface FelixSource {
  name: string;
  spec: Readonly<Record<string, unknown>>;
}

export interface ConfigSources {
  /** Flag values as given, keyed by setting name. */
  flags?: Readonly<Partial<Record<ConfigName, string | undefined>>>;
  env?: Readonly<Record<string, string | undefined>>;
  file?: { path: string; values: Readonly<Record<string, unknown>> };
  felixNode?: FelixSource;
  felixDefault?: FelixSource;
}

export interface ResolvedConfig {
  config: AgentConfig;
  /** Where each value came from: `flag --health-port`, `default`, … */
  origins: Record<ConfigName, string>;
  /** Problems skipped over (FelixConfiguration values that do not parse). */
  warnings: string[];
}

/**
 * Resolve every setting by precedence (see the file header). Throws
 * TwillError "Invalid" listing every bad flag, environment or file value.
 */
export function resolveConfig(sources: ConfigSources, ctx: DefaultContext): ResolvedConfig {
  const config: Record<string, unknown> = {};
  const origins: Record<string, string> = {};
  const errors: string[] = [];
  const warnings: string[] = [];
  const given = (v: string | undefined): v is string => v !== undefined && v !== "";

  for (const p of CONFIG_PARAMS) {
    const candidates: { origin: string; read: () => unknown; fatal: boolean }[] = [];
    const flagText = sources.flags?.[p.name];
    if (p.flag !== undefined && given(flagText)) {
      candidates.push({
        origin: `flag ${p.flag}`,
        read: () => p.type.fromText(flagText),
        fatal: true,
      });
    }
    const envText = sources.env?.[p.env];
    if (given(envText)) {
      candidates.push({
        origin: `environment ${p.env}`,
        read: () => p.type.fromText(envText),
        fatal: true,
      });
    }
    const file = sources.file;
    if (p.file && file && Object.hasOwn(file.values, p.name)) {
      candidates.push({
        origin: `config file ${file.path}`,
        read: () => p.type.fromValue(file.values[p.name]),
        fatal: true,
      });
    }
    for (const felix of [sources.felixNode, sources.felixDefault]) {
      if (p.felix && felix && felix.spec[p.name] !== undefined) {
        candidates.push({
          origin: `FelixConfiguration "${felix.name}" spec.${p.name}`,
          read: () => p.type.fromValue(felix.spec[p.name]),
          fatal: false,
        });
      }
    }
    let chosen = false;
    for (const c of candidates) {
      try {
        const value = c.read();
        if (!chosen) {
          config[p.name] = value;
          origins[p.name] = c.origin;
          chosen = true;
        }
      } catch (err) {
        const message = `${p.name} from ${c.origin}: ${err instanceof Error ? err.message : String(err)}`;
        if (c.fatal) errors.push(message);
        else if (!chosen) warnings.push(`${message} (ignored)`);
      }
    }
    if (!chosen) {
      config[p.name] =
        typeof p.default === "function"
          ? (p.default as (c: DefaultContext) => unknown)(ctx)
          : p.default;
      origins[p.name] = "default";
    }
  }
  if (errors.length > 0) {
    throw new TwillError(
      "Invalid",
      `invalid agent configuration:\n${errors.map((e) => `  ${e}`).join("\n")}`,
    );
  }
  return {
    config: config as AgentConfig,
    origins: origins as Record<ConfigName, string>,
    warnings,
  };
}

/**
 * Parse a config file's text (YAML or JSON): a mapping of setting names to
 * values. Unknown names, and names a file may not set, are errors naming
 * the file and the key.
 */
export function parseConfigFile(
  path: string,
  text: string,
): { path: string; values: Record<string, unknown> } {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new TwillError(
      "Invalid",
      `config file ${path}: not YAML or JSON: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (doc === null || doc === undefined) return { path, values: {} };
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new TwillError("Invalid", `config file ${path}: expected a mapping of settings`);
  }
  const values = doc as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(values)) {
    const p = BY_NAME.get(key);
    if (!p) problems.push(`unknown setting "${key}"`);
    else if (!p.file) problems.push(`"${key}" cannot be set in a config file`);
  }
  if (problems.length > 0) {
    throw new TwillError("Invalid", `config file ${path}: ${problems.join("; ")}`);
  }
  return { path, values };
}

/** The settings that FelixConfiguration may change while the agent runs (applied without a restart). */
export function liveSettingsChanged(before: AgentConfig, after: AgentConfig): ConfigName[] {
  return CONFIG_PARAMS.filter(
    (p) => p.felix && JSON.stringify(before[p.name]) !== JSON.stringify(after[p.name]),
  ).map((p) => p.name);
}

/** Pino's level for Felix's severity names. */
export function pinoLevel(
  severity: LogSeverity,
): "trace" | "debug" | "info" | "warn" | "error" | "fatal" {
  switch (severity) {
    case "Trace":
      return "trace";
    case "Debug":
      return "debug";
    case "Info":
      return "info";
    case "Warning":
      return "warn";
    case "Error":
      return "error";
    case "Fatal":
      return "fatal";
  }
}
