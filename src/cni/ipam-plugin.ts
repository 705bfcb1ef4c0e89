// twill-ipam: twill's IPAM as a CNI IPAM plugin for another main plugin
// (`"ipam": {"type": "twill-ipam"}` under bridge, macvlan, ...). The same
// executable as the main plugin; only the mode differs. ADD answers the
// abbreviated IPAM result (ips only, /32 and /128: the main plugin decides
// the interface); the rest mirrors the main plugin's IPAM half.
import { CNI_ERROR, CniError } from "./cni-error.js";
import type { CniResult } from "./cni-result.js";
import { parsePrevResult } from "./cni-result.js";
import type { Session } from "./cni-session.js";
import { ipamHandle } from "./endpoint-identity.js";
import { cmdStatus } from "./cni-gc-status.js";
import { assignAddresses, checkAddresses, staleAllocations } from "./twill-ipam.js";

function attributesOf(session: Session): Record<string, string> {
  const { env } = session;
  const out: Record<string, string> = { node: session.node, containerID: env.containerId };
  const pod = env.args.get("K8S_POD_NAME");
  const namespace = env.args.get("K8S_POD_NAMESPACE");
  if (pod) out["pod"] = pod;
  if (namespace) out["namespace"] = namespace;
  return out;
}

/** Runs one command of the IPAM-only plugin; returns the result for ADD. */
export async function runIpamCommand(session: Session): Promise<CniResult | undefined> {
  const { conf, env } = session;
  switch (env.command) {
    case "ADD": {
      const { ipam } = await session.datastore();
      const requested = [...conf.requestedIPs];
      const ipArg = env.args.get("IP");
      if (requested.length === 0 && ipArg) {
        requested.push(...ipArg.split(",").map((ip) => ip.split("/")[0] as string));
      }
      const got = await session.withIpamTurn(() =>
        assignAddresses(ipam, {
          node: session.node,
          handle: ipamHandle(conf.name, env.containerId),
          attributes: attributesOf(session),
          settings: conf.ipam,
          requested,
        }),
      );
      for (const warning of got.warnings) session.deps.log({ level: "warning", msg: warning });
      const ips = [];
      if (got.ipv4 !== undefined) ips.push({ address: `${got.ipv4}/32` });
      if (got.ipv6 !== undefined) ips.push({ address: `${got.ipv6}/128` });
      return { cniVersion: conf.cniVersion, ips, routes: [], dns: conf.dns ?? {} };
    }
    case "DEL": {
      const { ipam } = await session.datastore();
      await session.withIpamTurn(() =>
        ipam.releaseByHandle(ipamHandle(conf.name, env.containerId)),
      );
      return undefined;
    }
    case "CHECK": {
      if (conf.prevResult === undefined) {
        throw new CniError(CNI_ERROR.invalidConfig, "CHECK needs prevResult");
      }
      const ips = (parsePrevResult(conf.prevResult).ips ?? []).map(
        (ip) => ip.address.split("/")[0] as string,
      );
      const { ipam } = await session.datastore();
      const problems = await checkAddresses(ipam, ipamHandle(conf.name, env.containerId), ips);
      if (problems.length > 0) {
        throw new CniError(
          CNI_ERROR.checkFailed,
          `CHECK found ${problems.length} difference(s) from prevResult`,
          problems.join("; "),
        );
      }
      return undefined;
    }
    case "GC": {
      if (!conf.validAttachments) {
        throw new CniError(CNI_ERROR.invalidConfig, "GC needs cni.dev/valid-attachments");
      }
      const { ipam } = await session.datastore();
      const valid = new Set(conf.validAttachments.map((a) => a.containerID));
      const stale = await staleAllocations(ipam, conf.name, session.node, valid);
      const errors: string[] = [];
      for (const handle of new Set(stale.map((s) => s.handle))) {
        try {
          await session.withIpamTurn(() => ipam.releaseByHandle(handle));
        } catch (err) {
          errors.push(`${handle}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (errors.length > 0) {
        throw new CniError(
          CNI_ERROR.tryAgainLater,
          "GC could not release everything",
          errors.join("; "),
        );
      }
      return undefined;
    }
    case "STATUS":
      await cmdStatus(session);
      return undefined;
    case "VERSION":
      return undefined;
  }
}
