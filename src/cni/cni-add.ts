// ADD: give a workload its network.
//
//   1 check the netns (nothing done yet)
//   2 at once: addresses from IPAM (in-process, or the delegated IPAM
//     plugin), and the veth pair: host side tw<hash> (ee:ee:ee:ee:ee:ee, up),
//     peer in CNI_NETNS as CNI_IFNAME with a MAC chosen here
//   3 the host side's sysctls (before the workload side is up: see there)
//   4 at once: the workload side (up, addresses, 169.254.1.1 link route,
//     default routes), the host side's /32 (/128) routes (proto 116), and
//     the WorkloadEndpoint, checked against its schema and written (the
//     host side is up since step 2, so the agent programs the endpoint in
//     one pass, while `ip` still works here)
//   5 wait until the agent reports the endpoint's policy programmed
//
// Every step that changed something pushes its undo; any failure runs the
// undos in reverse (endpoint deleted, veth removed, addresses released) and
// reports the first error: a failed ADD leaves nothing behind. Undo only
// ever touches what this ADD made (the addresses it got, the veth it
// created, the endpoint revision it wrote), never what was there before.
import { randomBytes } from "node:crypto";
import { endpointStatusKey } from "../datastore/endpoint-status.js";
import { isErrorCode } from "../util/errors.js";
import type { NetConf } from "./cni-config.js";
import { CNI_ERROR, CniError, cniErrorFrom } from "./cni-error.js";
import { mergeResults, parsePrevResult } from "./cni-result.js";
import type { CniResult } from "./cni-result.js";
import type { Session } from "./cni-session.js";
import type { EndpointIdentity } from "./endpoint-identity.js";
import {
  WORKLOAD_ENDPOINT,
  buildWorkloadEndpoint,
  checkWorkloadEndpoint,
} from "./endpoint-resource.js";
import { HOST_SIDE_MAC, IPV4_GATEWAY, IPV6_GATEWAY } from "./netlink.js";
import type { WorkloadAddresses } from "./netlink.js";
import { waitForProgrammed } from "./policy-wait.js";
import { assignAddresses, releaseAddresses } from "./twill-ipam.js";

interface Undo {
  what: string;
  run(): Promise<unknown>;
}

export async function cmdAdd(session: Session): Promise<CniResult> {
  const { conf, env, deps } = session;
  const id = session.identity();
  const undos: Undo[] = [];
  let step = "checking the request";
  try {
    if (await deps.netlink.isOwnNetns(env.netns)) {
      throw new CniError(
        CNI_ERROR.invalidNetns,
        "invalid CNI_NETNS",
        `CNI_NETNS ${env.netns} is the plugin's own network namespace`,
      );
    }
    if (!(await deps.netlink.netnsExists(env.netns))) {
      throw new CniError(
        CNI_ERROR.invalidEnvironment,
        "invalid CNI_NETNS",
        `CNI_NETNS ${env.netns} does not exist`,
      );
    }
    const prev = conf.prevResult !== undefined ? parsePrevResult(conf.prevResult) : undefined;
    // The workload side's MAC is chosen here, as the kernel would choose it
    // (random, locally administered), so that the endpoint is known in full
    // as soon as IPAM answers.
    const mac = conf.requestedMac ?? randomMac();

    // The veth pair needs no address: it is made while IPAM works.
    step = "assigning addresses and creating the veth pair";
    const vethSpec = { hostInterface: id.hostInterface, netns: env.netns, ifname: env.ifname };
    const [assigned, veth] = await Promise.allSettled([
      assign(session, id),
      deps.netlink.createVeth({
        ...vethSpec,
        ...(conf.mtu !== undefined ? { mtu: conf.mtu } : {}),
        containerMac: mac,
      }),
    ]);
    if (assigned.status === "fulfilled") {
      const { addresses } = assigned.value;
      undos.push({
        what: "releasing the addresses",
        run: () => unassign(session, id, addresses),
      });
    }
    if (veth.status === "fulfilled") {
      undos.push({
        what: `deleting interface "${id.hostInterface}"`,
        run: () => deps.netlink.deleteHostInterface(id.hostInterface),
      });
    }
    if (assigned.status === "rejected") {
      step = "assigning addresses";
      throw assigned.reason;
    }
    if (veth.status === "rejected") {
      step = "creating the veth pair";
      throw veth.reason;
    }
    const { addresses, dns } = assigned.value;

    // The host side's sysctls first: they must be in place before the
    // workload side comes up (with both ends up the veth has carrier, and
    // IPv6 would start duplicate address detection on the host side unless
    // accept_dad=0 is set by then). Synchronous writes: fast.
    step = "configuring the host side";
    await deps.netlink.configureHostSysctls(id.hostInterface, addresses);

    // Then three things at once: the workload side, the host side's route,
    // and the WorkloadEndpoint (checked against its schema, then written).
    // The host side has been up since the veth was made, so the agent
    // programs the endpoint in one pass as soon as it sees it, while `ip`
    // still works here: its nftables transaction, route and status overlap
    // this process's configuration instead of following it. The workload
    // cannot send before ADD returns, and ADD returns only once all three
    // are done and the agent reports the policy programmed. Any failure
    // undoes all of it (the endpoint included, when it was written).
    step = "configuring the interfaces";
    const wep = buildWorkloadEndpoint(id, conf, { addresses, mac });
    const { store } = await session.datastore();
    const statusKey = endpointStatusKey(store.prefix, {
      node: id.node,
      namespace: id.namespace,
      name: id.wepName,
    });
    let checked = false;
    const writeEndpoint = async (): Promise<string> => {
      await checkWorkloadEndpoint(wep);
      checked = true;
      // Almost always new: one transaction. An ADD repeated for an endpoint
      // that is there already (same pod, same interface) replaces it.
      let written;
      try {
        written = await store.create(wep);
      } catch (err) {
        if (!isErrorCode(err, "AlreadyExists")) throw err;
        written = (await store.apply(wep)).resource;
      }
      const version = written.metadata.resourceVersion ?? "0";
      undos.push({
        what: `deleting workload endpoint "${id.wepName}"`,
        run: async () => {
          try {
            await store.delete(WORKLOAD_ENDPOINT, id.wepName, {
              namespace: id.namespace,
              resourceVersion: version,
            });
          } catch (err) {
            // Changed since (someone else's now) or already gone: leave it.
            if (!isErrorCode(err, "Conflict") && !isErrorCode(err, "NotFound")) throw err;
          }
          await store.backend.txn({ compare: [], success: [{ type: "delete", key: statusKey }] });
        },
      });
      return version;
    };
    const [workload, host, written] = await Promise.allSettled([
      deps.netlink.configureWorkloadSide(env.netns, env.ifname, addresses),
      deps.netlink.configureHostSide(id.hostInterface, addresses),
      writeEndpoint(),
    ]);
    if (host.status === "rejected") {
      step = "configuring the host side";
      throw host.reason;
    }
    if (workload.status === "rejected") {
      step = "configuring the workload side";
      throw workload.reason;
    }
    if (written.status === "rejected") {
      step = checked ? "writing the workload endpoint" : "checking the workload endpoint";
      throw written.reason;
    }
    const resourceVersion = written.value;

    if (conf.policy.waitForProgrammed) {
      step = "waiting for the endpoint's policy";
      await waitForProgrammed({
        backend: store.backend,
        key: statusKey,
        resourceVersion,
        fromRevision: Number(resourceVersion),
        timeoutMs: conf.policy.timeoutSeconds * 1000,
        what: `workload endpoint "${id.wepName}" in namespace "${id.namespace}" (revision ${resourceVersion})`,
      });
    }
    return mergeResults(prev, addResult(conf, id, env.netns, env.ifname, addresses, mac, dns));
  } catch (err) {
    const failure = cniErrorFrom(err, `ADD failed while ${step}`);
    for (const undo of undos.reverse()) {
      try {
        await undo.run();
      } catch (undoErr) {
        deps.log({
          level: "error",
          msg: `rollback step failed: ${undo.what}`,
          error: undoErr instanceof Error ? undoErr.message : String(undoErr),
          containerID: env.containerId,
        });
      }
    }
    throw failure;
  }
}

/** A random unicast, locally administered MAC (what the kernel gives a veth when asked for none). */
function randomMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = ((bytes[0] as number) & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Addresses for the attachment, from twill's IPAM or the delegated plugin. */
async function assign(
  session: Session,
  id: EndpointIdentity,
): Promise<{ addresses: WorkloadAddresses; dns?: CniResult["dns"] }> {
  const { conf, env, deps } = session;
  if (session.inProcessIpam) {
    const { ipam } = await session.datastore();
    const requested = [...conf.requestedIPs];
    const ipArg = env.args.get("IP");
    if (requested.length === 0 && ipArg !== undefined && ipArg !== "") {
      requested.push(...ipArg.split(",").map((ip) => ip.split("/")[0] as string));
    }
    const attributes: Record<string, string> = {
      node: id.node,
      namespace: id.namespace,
      containerID: id.containerId,
      workloadEndpoint: id.wepName,
    };
    if (id.pod !== undefined) attributes["pod"] = id.pod;
    const got = await session.withIpamTurn(() =>
      assignAddresses(ipam, {
        node: id.node,
        handle: id.handle,
        attributes,
        settings: conf.ipam,
        requested,
      }),
    );
    for (const warning of got.warnings) deps.log({ level: "warning", msg: warning });
    const addresses: WorkloadAddresses = {};
    if (got.ipv4 !== undefined) addresses.ipv4 = got.ipv4;
    if (got.ipv6 !== undefined) addresses.ipv6 = got.ipv6;
    return { addresses };
  }
  const stdout = await session.delegateIpam("ADD");
  let result: CniResult;
  try {
    result = parsePrevResult(JSON.parse(stdout));
  } catch (err) {
    await session.delegateIpam("DEL").catch(() => undefined);
    throw cniErrorFrom(err, `IPAM plugin "${conf.ipam.type}" returned an unreadable result`);
  }
  const addresses: WorkloadAddresses = {};
  for (const ip of result.ips ?? []) {
    const bare = ip.address.split("/")[0] as string;
    if (bare.includes(":")) addresses.ipv6 ??= bare;
    else addresses.ipv4 ??= bare;
  }
  if (addresses.ipv4 === undefined && addresses.ipv6 === undefined) {
    await session.delegateIpam("DEL").catch(() => undefined);
    throw new CniError(
      CNI_ERROR.invalidConfig,
      `IPAM plugin "${conf.ipam.type}" returned no address`,
      stdout.slice(0, 500),
    );
  }
  return result.dns ? { addresses, dns: result.dns } : { addresses };
}

async function unassign(
  session: Session,
  id: EndpointIdentity,
  addresses: WorkloadAddresses,
): Promise<void> {
  if (session.inProcessIpam) {
    const { ipam } = await session.datastore();
    await session.withIpamTurn(() => releaseAddresses(ipam, id.handle, addresses));
    return;
  }
  await session.delegateIpam("DEL");
}

function addResult(
  conf: NetConf,
  id: EndpointIdentity,
  netns: string,
  ifname: string,
  addresses: WorkloadAddresses,
  mac: string,
  ipamDns: CniResult["dns"],
): CniResult {
  const mtu = conf.mtu !== undefined ? { mtu: conf.mtu } : {};
  const result: CniResult = {
    cniVersion: conf.cniVersion,
    interfaces: [
      { name: id.hostInterface, mac: HOST_SIDE_MAC, ...mtu },
      { name: ifname, mac, ...mtu, sandbox: netns },
    ],
    ips: [],
    routes: [],
  };
  if (addresses.ipv4 !== undefined) {
    result.ips?.push({ address: `${addresses.ipv4}/32`, gateway: IPV4_GATEWAY, interface: 1 });
    result.routes?.push({ dst: "0.0.0.0/0", gw: IPV4_GATEWAY });
  }
  if (addresses.ipv6 !== undefined) {
    result.ips?.push({ address: `${addresses.ipv6}/128`, gateway: IPV6_GATEWAY, interface: 1 });
    result.routes?.push({ dst: "::/0", gw: IPV6_GATEWAY });
  }
  const dns = conf.dns ?? ipamDns;
  result.dns = dns ?? {};
  return result;
}
