// The success result of ADD (CNI 1.0.0 / 1.1.0) and reading one back as
// prevResult (CHECK, DEL). 1.1.0 adds interfaces[].mtu; nothing else the
// plugin emits differs between the two versions.
import { compareVersions } from "./cni-config.js";
import type { DnsSettings } from "./cni-config.js";
import { CNI_ERROR, CniError } from "./cni-error.js";

export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface ResultIP {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: ResultInterface[];
  ips?: ResultIP[];
  routes?: ResultRoute[];
  dns?: DnsSettings;
}

/** Parses a prevResult (lenient about fields it does not use); code 7 when malformed. */
export function parsePrevResult(raw: unknown): CniResult {
  const bad = (problem: string): CniError =>
    new CniError(CNI_ERROR.invalidConfig, "invalid prevResult", problem);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw bad("prevResult must be an object");
  }
  const o = raw as Record<string, unknown>;
  const list = (key: string): Record<string, unknown>[] => {
    const v = o[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "object" || x === null)) {
      throw bad(`prevResult.${key} must be a list of objects`);
    }
    return v as Record<string, unknown>[];
  };
  const result: CniResult = {
    cniVersion: typeof o["cniVersion"] === "string" ? o["cniVersion"] : "",
    interfaces: list("interfaces").map((i, n) => {
      if (typeof i["name"] !== "string")
        throw bad(`prevResult.interfaces[${n}].name must be a string`);
      const out: ResultInterface = { name: i["name"] };
      if (typeof i["mac"] === "string") out.mac = i["mac"];
      if (typeof i["mtu"] === "number") out.mtu = i["mtu"];
      if (typeof i["sandbox"] === "string") out.sandbox = i["sandbox"];
      return out;
    }),
    ips: list("ips").map((ip, n) => {
      if (typeof ip["address"] !== "string")
        throw bad(`prevResult.ips[${n}].address must be a string`);
      const out: ResultIP = { address: ip["address"] };
      if (typeof ip["gateway"] === "string") out.gateway = ip["gateway"];
      if (typeof ip["interface"] === "number") out.interface = ip["interface"];
      return out;
    }),
    routes: list("routes").map((r, n) => {
      if (typeof r["dst"] !== "string") throw bad(`prevResult.routes[${n}].dst must be a string`);
      const out: ResultRoute = { dst: r["dst"] };
      if (typeof r["gw"] === "string") out.gw = r["gw"];
      return out;
    }),
  };
  if (typeof o["dns"] === "object" && o["dns"] !== null) result.dns = o["dns"] as DnsSettings;
  return result;
}

/**
 * Appends `ours` to a previous plugin's result (ADD after another plugin):
 * interface indices of our ips are shifted past the previous interfaces.
 */
export function mergeResults(prev: CniResult | undefined, ours: CniResult): CniResult {
  if (!prev) return ours;
  const offset = prev.interfaces?.length ?? 0;
  const out: CniResult = {
    cniVersion: ours.cniVersion,
    interfaces: [...(prev.interfaces ?? []), ...(ours.interfaces ?? [])],
    ips: [
      ...(prev.ips ?? []),
      ...(ours.ips ?? []).map((ip) =>
        ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset },
      ),
    ],
    routes: [...(prev.routes ?? []), ...(ours.routes ?? [])],
  };
  const dns = ours.dns ?? prev.dns;
  if (dns) out.dns = dns;
  return out;
}

/** Drops fields the result's version does not have (interfaces[].mtu before 1.1.0). */
export function forVersion(result: CniResult): CniResult {
  if (compareVersions(result.cniVersion, "1.1.0") >= 0) return result;
  return {
    ...result,
    interfaces: result.interfaces?.map(({ mtu: _mtu, ...rest }) => rest),
  } as CniResult;
}
