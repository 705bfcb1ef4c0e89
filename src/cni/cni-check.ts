// CHECK: is the attachment still what ADD reported (prevResult)? Looks at
// both ends of the veth, the host routes and sysctls, the workload's
// addresses and gateway routes, IPAM and the WorkloadEndpoint, and reports
// every difference at once. Extra routes or addresses (added by a plugin
// later in the chain) are tolerated; only what twill made must be there.
import { isErrorCode } from "../util/errors.js";
import { CNI_ERROR, CniError } from "./cni-error.js";
import { parsePrevResult } from "./cni-result.js";
import type { Session } from "./cni-session.js";
import { WORKLOAD_ENDPOINT } from "./endpoint-resource.js";
import { HOST_SIDE_MAC, IPV4_GATEWAY, IPV6_GATEWAY, hostSysctls } from "./netlink.js";
import type { RouteState, WorkloadAddresses } from "./netlink.js";
import { checkAddresses } from "./twill-ipam.js";

const hasRoute = (routes: readonly RouteState[], want: RouteState): boolean =>
  routes.some(
    (r) =>
      r.dst === want.dst &&
      (want.gateway === undefined || r.gateway === want.gateway) &&
      (want.scope === undefined || r.scope === want.scope),
  );

export async function cmdCheck(session: Session): Promise<void> {
  const { conf, env, deps } = session;
  const id = session.identity();
  if (conf.prevResult === undefined) {
    throw new CniError(
      CNI_ERROR.invalidConfig,
      "CHECK needs prevResult",
      "the runtime passed no prevResult: nothing to check against",
    );
  }
  const prev = parsePrevResult(conf.prevResult);
  const problems: string[] = [];
  const interfaces = prev.interfaces ?? [];
  const inside = interfaces.findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  if (inside < 0) {
    problems.push(`prevResult lists no interface "${env.ifname}" in sandbox ${env.netns}`);
  }
  const addresses: WorkloadAddresses = {};
  for (const ip of prev.ips ?? []) {
    if (inside >= 0 && ip.interface !== undefined && ip.interface !== inside) continue;
    const bare = ip.address.split("/")[0] as string;
    if (bare.includes(":")) addresses.ipv6 ??= bare;
    else addresses.ipv4 ??= bare;
  }
  const ips = [addresses.ipv4, addresses.ipv6].filter((a): a is string => a !== undefined);

  // The host side.
  const host = await deps.netlink.inspectHostSide(id.hostInterface);
  if (!host) {
    problems.push(`host interface "${id.hostInterface}" does not exist`);
  } else {
    if (host.link.mac !== HOST_SIDE_MAC) {
      problems.push(
        `host interface "${id.hostInterface}" has MAC ${host.link.mac}, not ${HOST_SIDE_MAC}`,
      );
    }
    if (!host.link.up) problems.push(`host interface "${id.hostInterface}" is down`);
    for (const [path, value] of hostSysctls(id.hostInterface, addresses)) {
      const actual = host.sysctls[path];
      if (actual !== value) {
        problems.push(`net.${path.replaceAll("/", ".")} is ${actual ?? "missing"}, not ${value}`);
      }
    }
    if (
      addresses.ipv4 !== undefined &&
      !hasRoute(host.routes, { dst: `${addresses.ipv4}/32`, scope: "link" })
    ) {
      problems.push(`no host route ${addresses.ipv4}/32 dev ${id.hostInterface}`);
    }
    if (addresses.ipv6 !== undefined && !hasRoute(host.routes, { dst: `${addresses.ipv6}/128` })) {
      problems.push(`no host route ${addresses.ipv6}/128 dev ${id.hostInterface}`);
    }
  }

  // The workload side.
  let workload;
  try {
    workload = await deps.netlink.inspectWorkloadSide(env.netns, env.ifname);
  } catch (err) {
    if (!isErrorCode(err, "NotFound")) throw err;
    problems.push(`network namespace ${env.netns} does not exist`);
  }
  const prevMac = inside >= 0 ? interfaces[inside]?.mac : undefined;
  if (workload === undefined) {
    problems.push(`interface "${env.ifname}" does not exist in ${env.netns}`);
  } else {
    if (!workload.link.up) problems.push(`interface "${env.ifname}" in ${env.netns} is down`);
    if (prevMac !== undefined && workload.link.mac !== prevMac.toLowerCase()) {
      problems.push(
        `interface "${env.ifname}" has MAC ${workload.link.mac}, prevResult says ${prevMac}`,
      );
    }
    if (addresses.ipv4 !== undefined) {
      if (!workload.addresses.includes(`${addresses.ipv4}/32`)) {
        problems.push(`interface "${env.ifname}" lacks address ${addresses.ipv4}/32`);
      }
      if (!hasRoute(workload.routes, { dst: `${IPV4_GATEWAY}/32`, scope: "link" })) {
        problems.push(`no route ${IPV4_GATEWAY} dev ${env.ifname} scope link in the workload`);
      }
      if (!hasRoute(workload.routes, { dst: "0.0.0.0/0", gateway: IPV4_GATEWAY })) {
        problems.push(`no default route via ${IPV4_GATEWAY} in the workload`);
      }
    }
    if (addresses.ipv6 !== undefined) {
      if (!workload.addresses.includes(`${addresses.ipv6}/128`)) {
        problems.push(`interface "${env.ifname}" lacks address ${addresses.ipv6}/128`);
      }
      if (!hasRoute(workload.routes, { dst: "::/0", gateway: IPV6_GATEWAY })) {
        problems.push(`no IPv6 default route via ${IPV6_GATEWAY} in the workload`);
      }
    }
  }

  // IPAM.
  if (session.inProcessIpam) {
    const { ipam } = await session.datastore();
    problems.push(...(await checkAddresses(ipam, id.handle, ips)));
  } else {
    try {
      await session.delegateIpam("CHECK");
    } catch (err) {
      problems.push(
        err instanceof CniError
          ? `${err.message}${err.details ? `: ${err.details}` : ""}`
          : String(err),
      );
    }
  }

  // The endpoint.
  const { store } = await session.datastore();
  try {
    const wep = await store.get(WORKLOAD_ENDPOINT, id.wepName, { namespace: id.namespace });
    const spec = (wep.spec ?? {}) as Record<string, unknown>;
    const where = `workload endpoint "${id.wepName}" in namespace "${id.namespace}"`;
    if (spec["containerID"] !== undefined && spec["containerID"] !== id.containerId) {
      problems.push(`${where} belongs to container ${String(spec["containerID"])}`);
    }
    if (spec["interfaceName"] !== id.hostInterface) {
      problems.push(
        `${where} names interface ${String(spec["interfaceName"])}, not ${id.hostInterface}`,
      );
    }
    const nets = [...((spec["ipNetworks"] as string[] | undefined) ?? [])].sort();
    const want = [
      ...(addresses.ipv4 !== undefined ? [`${addresses.ipv4}/32`] : []),
      ...(addresses.ipv6 !== undefined ? [`${addresses.ipv6}/128`] : []),
    ].sort();
    if (nets.join(",") !== want.join(",")) {
      problems.push(
        `${where} has ipNetworks [${nets.join(", ")}], prevResult says [${want.join(", ")}]`,
      );
    }
    if (workload && spec["mac"] !== undefined && spec["mac"] !== workload.link.mac) {
      problems.push(
        `${where} has mac ${String(spec["mac"])}, the interface has ${workload.link.mac}`,
      );
    }
  } catch (err) {
    if (!isErrorCode(err, "NotFound")) throw err;
    problems.push(
      `workload endpoint "${id.wepName}" in namespace "${id.namespace}" does not exist`,
    );
  }

  if (problems.length > 0) {
    throw new CniError(
      CNI_ERROR.checkFailed,
      `CHECK found ${problems.length} difference(s) from prevResult`,
      problems.join("; "),
    );
  }
}
