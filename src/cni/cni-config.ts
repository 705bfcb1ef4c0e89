// The network configuration on stdin: decoded, version-checked and turned
// into one typed NetConf. Hand-written checks rather than a schema library:
// the plugin is a new process for every call and must start fast (see
// docs/cni.md). Field names follow Calico's CNI config where Calico has the
// field (nodename, mtu, etcd_endpoints, ipam.assign_ipv4, ...), so a Calico
// conflist works unchanged; twill's additions are camelCase.
//
// Order of checks, as the reference library's: decode (code 6), network name
// (7), cniVersion (1), then the plugin's own fields (7, or 2 for a setting
// twill does not support).
import { parseCIDR, parseIP } from "../api/ip.js";
import { CNI_ERROR, CniError } from "./cni-error.js";

/** The versions this plugin speaks (VERSION reports them). */
export const SUPPORTED_VERSIONS = ["1.0.0", "1.1.0"] as const;
/** What VERSION answers when the input names no supported version. */
export const LATEST_VERSION = "1.1.0";

export const DEFAULT_IPAM_TYPE = "twill-ipam";
export const DEFAULT_INTERFACE_PREFIX = "tw";
export const DEFAULT_POLICY_TIMEOUT_SECONDS = 10;
export const DEFAULT_NAMESPACE = "default";

export interface IpamSettings {
  /** The IPAM plugin: "twill-ipam" runs in-process; anything else is executed from CNI_PATH. */
  type: string;
  assignIPv4: boolean;
  assignIPv6: boolean;
  /** Pool names or CIDRs to take IPv4 addresses from (default: every pool that applies). */
  ipv4Pools: string[];
  ipv6Pools: string[];
}

export interface PolicySettings {
  /** ADD returns only once the agent reports the endpoint's policy programmed. */
  waitForProgrammed: boolean;
  timeoutSeconds: number;
}

export interface DatastoreSettings {
  endpoints?: string;
  caCertFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** Key prefix (default "/twill/v1"). */
  prefix?: string;
}

export interface DnsSettings {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  nodename?: string;
  mtu?: number;
  /** Namespace of endpoints that are not Kubernetes pods (default "default"). */
  namespace?: string;
  interfacePrefix: string;
  labels: Record<string, string>;
  /** Profiles for the endpoint (default: ["kns.<namespace>"]). */
  profiles?: string[];
  ipam: IpamSettings;
  policy: PolicySettings;
  datastore: DatastoreSettings;
  dns?: DnsSettings;
  /** The raw prevResult, when the runtime passed one. */
  prevResult?: unknown;
  /** Addresses asked for: runtimeConfig.ips, else args.cni.ips. */
  requestedIPs: string[];
  /** runtimeConfig.mac: the MAC address the workload's interface should have. */
  requestedMac?: string;
  /** Labels from args.cni.labels. */
  argsLabels: Record<string, string>;
  /** GC: cni.dev/valid-attachments (or the older cni.dev/attachments). */
  validAttachments?: Attachment[];
  /** The whole decoded config (handed on to a delegated IPAM plugin). */
  raw: Record<string, unknown>;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** -1, 0, 1 comparing two "x.y.z" versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

function invalid(field: string, problem: string): CniError {
  return new CniError(CNI_ERROR.invalidConfig, "invalid network config", `${field}: ${problem}`);
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(o: Obj, key: string, field: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalid(field, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function strList(o: Obj, key: string, field: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw invalid(field, `must be a list of strings, got ${JSON.stringify(v)}`);
  }
  return v as string[];
}

/** Calico writes booleans as strings ("true"); accept both. */
function bool(o: Obj, key: string, field: string, dflt: boolean): boolean {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (v === true || v === "true") return true;
  if (v === false || v === "false") return false;
  throw invalid(field, `must be true or false, got ${JSON.stringify(v)}`);
}

function obj(o: Obj, key: string, field: string): Obj | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw invalid(field, `must be an object, got ${JSON.stringify(v)}`);
  return v;
}

function labelMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw invalid(field, "must be an object of label keys to string values");
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") throw invalid(`${field}.${k}`, "must be a string");
    out[k] = val;
  }
  return out;
}

/** Decodes stdin into a JSON object: code 6 otherwise. */
export function decodeConfig(stdin: string): Obj {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CNI_ERROR.decode, "error unmarshall network config", (err as Error).message);
  }
  if (!isObj(raw)) {
    throw new CniError(
      CNI_ERROR.decode,
      "error unmarshall network config",
      `expected a JSON object, got ${Array.isArray(raw) ? "an array" : typeof raw}`,
    );
  }
  return raw;
}

/** The config's cniVersion if it is one this plugin supports; code 1 otherwise. */
export function checkVersion(raw: Obj): string {
  const v = raw["cniVersion"];
  const version = typeof v === "string" && v !== "" ? v : "0.1.0";
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(
      CNI_ERROR.incompatibleVersion,
      "incompatible CNI versions",
      `config is "${version}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    );
  }
  return version;
}

function parseIpam(raw: Obj, mode: "main" | "ipam"): IpamSettings {
  const o = obj(raw, "ipam", "ipam");
  if (mode === "main" && !o) {
    return {
      type: DEFAULT_IPAM_TYPE,
      assignIPv4: true,
      assignIPv6: false,
      ipv4Pools: [],
      ipv6Pools: [],
    };
  }
  if (!o) throw invalid("ipam", "missing: an IPAM plugin is configured with an ipam object");
  const type = str(o, "type", "ipam.type") ?? (mode === "main" ? DEFAULT_IPAM_TYPE : "");
  if (type === "" || /[/\\]/.test(type)) {
    throw invalid("ipam.type", `must be a plugin file name, got ${JSON.stringify(o["type"])}`);
  }
  const settings: IpamSettings = {
    type,
    assignIPv4: bool(o, "assign_ipv4", "ipam.assign_ipv4", true),
    assignIPv6: bool(o, "assign_ipv6", "ipam.assign_ipv6", false),
    ipv4Pools: strList(o, "ipv4_pools", "ipam.ipv4_pools") ?? [],
    ipv6Pools: strList(o, "ipv6_pools", "ipam.ipv6_pools") ?? [],
  };
  if (type === DEFAULT_IPAM_TYPE && !settings.assignIPv4 && !settings.assignIPv6) {
    throw invalid("ipam", "assign_ipv4 and assign_ipv6 are both false: nothing to assign");
  }
  return settings;
}

function parsePolicy(raw: Obj): PolicySettings {
  const o = obj(raw, "policy", "policy") ?? {};
  const timeout = o["timeoutSeconds"] ?? DEFAULT_POLICY_TIMEOUT_SECONDS;
  if (typeof timeout !== "number" || !(timeout > 0) || timeout > 600) {
    throw invalid(
      "policy.timeoutSeconds",
      `must be a number of seconds in (0, 600], got ${JSON.stringify(timeout)}`,
    );
  }
  return {
    waitForProgrammed: bool(o, "waitForProgrammed", "policy.waitForProgrammed", true),
    timeoutSeconds: timeout,
  };
}

function parseDatastore(raw: Obj): DatastoreSettings {
  const type = str(raw, "datastore_type", "datastore_type");
  if (type !== undefined && type !== "etcdv3") {
    throw new CniError(
      CNI_ERROR.unsupportedField,
      "unsupported field in network configuration",
      `datastore_type: "${type}": twill keeps its state in etcd ("etcdv3")`,
    );
  }
  const out: DatastoreSettings = {};
  const fields = [
    ["endpoints", "etcd_endpoints"],
    ["caCertFile", "etcd_ca_cert_file"],
    ["certFile", "etcd_cert_file"],
    ["keyFile", "etcd_key_file"],
    ["username", "etcd_username"],
    ["password", "etcd_password"],
    ["prefix", "datastorePrefix"],
  ] as const;
  for (const [to, from] of fields) {
    const v = str(raw, from, from);
    if (v !== undefined && v !== "") out[to] = v;
  }
  if (out.prefix !== undefined && !out.prefix.startsWith("/")) {
    throw invalid("datastorePrefix", `must start with "/", got "${out.prefix}"`);
  }
  return out;
}

function parseDns(raw: Obj): DnsSettings | undefined {
  const o = obj(raw, "dns", "dns");
  if (!o) return undefined;
  const dns: DnsSettings = {};
  const nameservers = strList(o, "nameservers", "dns.nameservers");
  nameservers?.forEach((ns, i) => {
    if (!parseIP(ns)) throw invalid(`dns.nameservers[${i}]`, `"${ns}" is not an IP address`);
  });
  const domain = str(o, "domain", "dns.domain");
  const search = strList(o, "search", "dns.search");
  const options = strList(o, "options", "dns.options");
  if (nameservers) dns.nameservers = nameservers;
  if (domain !== undefined) dns.domain = domain;
  if (search) dns.search = search;
  if (options) dns.options = options;
  return dns;
}

function parseIPList(list: string[], field: string): string[] {
  return list.map((text, i) => {
    const cidr = parseCIDR(text, { allowBareIP: true });
    if (!cidr) throw invalid(`${field}[${i}]`, `"${text}" is not an IP address`);
    return text.split("/")[0] as string;
  });
}

function parseAttachments(raw: Obj): Attachment[] | undefined {
  const v = raw["cni.dev/valid-attachments"] ?? raw["cni.dev/attachments"];
  if (v === undefined || v === null) return undefined;
  const field = "cni.dev/valid-attachments";
  if (!Array.isArray(v)) throw invalid(field, "must be a list of {containerID, ifname}");
  return v.map((a, i) => {
    if (!isObj(a) || typeof a["containerID"] !== "string" || typeof a["ifname"] !== "string") {
      throw invalid(`${field}[${i}]`, "must be {containerID, ifname} strings");
    }
    return { containerID: a["containerID"], ifname: a["ifname"] };
  });
}

/**
 * The whole config for the main plugin (`mode` "main") or the IPAM plugin
 * ("ipam", which reads only the ipam object and the datastore settings).
 */
export function parseNetConf(stdin: string, mode: "main" | "ipam" = "main"): NetConf {
  const raw = decodeConfig(stdin);
  const name = raw["name"];
  if (name === undefined || name === null || name === "") {
    throw new CniError(CNI_ERROR.invalidConfig, "missing network name");
  }
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new CniError(
      CNI_ERROR.invalidConfig,
      "invalid characters found in network name",
      `name ${JSON.stringify(name)} must match ${NAME.source}`,
    );
  }
  const cniVersion = checkVersion(raw);
  const type = str(raw, "type", "type") ?? "";
  const conf: NetConf = {
    cniVersion,
    name,
    type,
    interfacePrefix: str(raw, "interfacePrefix", "interfacePrefix") ?? DEFAULT_INTERFACE_PREFIX,
    labels: labelMap(raw["labels"], "labels"),
    ipam: parseIpam(raw, mode),
    policy: parsePolicy(raw),
    datastore: parseDatastore(raw),
    requestedIPs: [],
    argsLabels: {},
    raw,
  };
  if (!/^[a-zA-Z0-9_.-]{1,14}$/.test(conf.interfacePrefix)) {
    throw invalid(
      "interfacePrefix",
      `"${conf.interfacePrefix}" must be 1-14 letters, digits, '_', '.' or '-'`,
    );
  }
  const nodename = str(raw, "nodename", "nodename");
  if (nodename !== undefined && nodename !== "") conf.nodename = nodename;
  const namespace = str(raw, "namespace", "namespace");
  if (namespace !== undefined && namespace !== "") conf.namespace = namespace;
  const mtu = raw["mtu"];
  if (mtu !== undefined && mtu !== null && mtu !== 0) {
    if (typeof mtu !== "number" || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
      throw invalid("mtu", `must be a whole number from 68 to 65535, got ${JSON.stringify(mtu)}`);
    }
    conf.mtu = mtu;
  }
  const profiles = strList(raw, "profiles", "profiles");
  if (profiles) conf.profiles = profiles;
  const dns = parseDns(raw);
  if (dns) conf.dns = dns;
  if (raw["prevResult"] !== undefined && raw["prevResult"] !== null) {
    conf.prevResult = raw["prevResult"];
  }
  const runtime = obj(raw, "runtimeConfig", "runtimeConfig") ?? {};
  const runtimeIPs = strList(runtime, "ips", "runtimeConfig.ips");
  const mac = str(runtime, "mac", "runtimeConfig.mac");
  if (mac !== undefined && mac !== "") {
    if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) {
      throw invalid("runtimeConfig.mac", `"${mac}" is not a MAC address`);
    }
    conf.requestedMac = mac.toLowerCase();
  }
  const cniArgs = obj(obj(raw, "args", "args") ?? {}, "cni", "args.cni") ?? {};
  const argsIPs = strList(cniArgs, "ips", "args.cni.ips");
  if (runtimeIPs && runtimeIPs.length > 0) {
    conf.requestedIPs = parseIPList(runtimeIPs, "runtimeConfig.ips");
  } else if (argsIPs && argsIPs.length > 0) {
    conf.requestedIPs = parseIPList(argsIPs, "args.cni.ips");
  }
  const labels = cniArgs["labels"];
  if (labels !== undefined && labels !== null) {
    if (!Array.isArray(labels)) throw invalid("args.cni.labels", "must be a list of {key, value}");
    labels.forEach((l, i) => {
      if (!isObj(l) || typeof l["key"] !== "string" || typeof l["value"] !== "string") {
        throw invalid(`args.cni.labels[${i}]`, "must be {key, value} strings");
      }
      conf.argsLabels[l["key"]] = l["value"];
    });
  }
  const attachments = parseAttachments(raw);
  if (attachments) conf.validAttachments = attachments;
  return conf;
}
