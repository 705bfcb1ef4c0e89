// GC and STATUS (CNI 1.1).
//
// GC: the runtime lists the attachments that are still valid; every
// allocation this network made on this node for a container not in that
// list is stale. For each: the host interface, the WorkloadEndpoint (if it
// still belongs to that container), its policy status and the addresses
// go. Errors do not stop the sweep; they are reported together at the end.
//
// STATUS: can ADD be served? The datastore must answer and an enabled pool
// of each family the config assigns must exist; otherwise code 50.
import { endpointStatusKey } from "../datastore/endpoint-status.js";
import { isErrorCode } from "../util/errors.js";
import { CNI_ERROR, CniError, cniErrorFrom } from "./cni-error.js";
import type { Session } from "./cni-session.js";
import { hostInterfaceName } from "./endpoint-identity.js";
import { WORKLOAD_ENDPOINT } from "./endpoint-resource.js";
import { ipamUnavailableReason, staleAllocations } from "./twill-ipam.js";
import type { StaleAllocation } from "./twill-ipam.js";

export async function cmdGc(session: Session): Promise<void> {
  const { conf, deps } = session;
  if (!conf.validAttachments) {
    throw new CniError(
      CNI_ERROR.invalidConfig,
      "GC needs cni.dev/valid-attachments",
      "without the list of valid attachments every attachment would look stale: nothing was collected",
    );
  }
  if (!session.inProcessIpam) {
    await session.delegateIpam("GC");
    return;
  }
  const { store, ipam } = await session.datastore();
  const valid = new Set(conf.validAttachments.map((a) => a.containerID));
  const stale = await staleAllocations(ipam, conf.name, session.node, valid);
  const byHandle = new Map<string, StaleAllocation[]>();
  for (const s of stale) byHandle.set(s.handle, [...(byHandle.get(s.handle) ?? []), s]);
  const errors: string[] = [];
  for (const [handle, allocations] of byHandle) {
    const first = allocations[0] as StaleAllocation;
    const { namespace, workloadEndpoint: wepName, containerID } = first;
    try {
      if (namespace !== undefined && wepName !== undefined) {
        await deps.netlink.deleteHostInterface(
          hostInterfaceName(conf.interfacePrefix, { namespace, wepName, containerId: containerID }),
        );
        try {
          const wep = await store.get(WORKLOAD_ENDPOINT, wepName, { namespace });
          const owner = (wep.spec as Record<string, unknown> | undefined)?.["containerID"];
          if (owner === undefined || owner === containerID) {
            const rv = wep.metadata.resourceVersion;
            await store.delete(WORKLOAD_ENDPOINT, wepName, {
              namespace,
              ...(rv !== undefined ? { resourceVersion: rv } : {}),
            });
            const key = endpointStatusKey(store.prefix, {
              node: session.node,
              namespace,
              name: wepName,
            });
            await store.backend.txn({ compare: [], success: [{ type: "delete", key }] });
          }
        } catch (err) {
          if (!isErrorCode(err, "NotFound") && !isErrorCode(err, "Conflict")) throw err;
        }
      }
      await session.withIpamTurn(() => ipam.releaseByHandle(handle));
      deps.log({
        level: "info",
        msg: "collected a stale attachment",
        handle,
        addresses: allocations.map((a) => a.ip),
      });
    } catch (err) {
      errors.push(`${handle}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (errors.length > 0) {
    throw new CniError(
      CNI_ERROR.tryAgainLater,
      `GC could not collect ${errors.length} stale attachment(s)`,
      errors.join("; "),
    );
  }
}

export async function cmdStatus(session: Session): Promise<void> {
  let datastore;
  try {
    datastore = await session.datastore();
  } catch (err) {
    const e = cniErrorFrom(err, "datastore unavailable");
    throw new CniError(CNI_ERROR.notAvailable, "datastore unavailable", e.details ?? e.message);
  }
  if (!session.inProcessIpam) {
    await session.delegateIpam("STATUS");
    return;
  }
  let reason: string | undefined;
  try {
    reason = await ipamUnavailableReason(datastore.ipam, session.conf.ipam);
  } catch (err) {
    throw new CniError(
      CNI_ERROR.notAvailable,
      "datastore unavailable",
      err instanceof Error ? err.message : String(err),
    );
  }
  if (reason !== undefined) {
    throw new CniError(CNI_ERROR.notAvailable, "no address pool to serve ADD", reason);
  }
}
