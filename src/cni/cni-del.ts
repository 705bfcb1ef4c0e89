// DEL: undo everything ADD did, and succeed when it is already undone.
//
// The host side of the veth goes first (its peer and the host routes go
// with it; the netns may be gone already), then the addresses (by handle:
// everything this container holds in this network), then the endpoint and
// its policy status. The endpoint is deleted only while it still belongs to
// this container: a pod recreated under the same name has a new sandbox,
// and the old sandbox's DEL must not delete the new endpoint.
//
// Best effort throughout: every step runs even if one before it failed; a
// failure that could leak state (the datastore unreachable) is reported so
// the runtime calls DEL again.
import { endpointStatusKey } from "../datastore/endpoint-status.js";
import { isErrorCode } from "../util/errors.js";
import { CniError, cniErrorFrom } from "./cni-error.js";
import { parsePrevResult } from "./cni-result.js";
import type { Session } from "./cni-session.js";
import { WORKLOAD_ENDPOINT } from "./endpoint-resource.js";

export async function cmdDel(session: Session): Promise<void> {
  const { conf, deps } = session;
  const id = session.identity();
  const failures: CniError[] = [];
  const attempt = async (what: string, run: () => Promise<unknown>): Promise<void> => {
    try {
      await run();
    } catch (err) {
      failures.push(cniErrorFrom(err, `DEL failed while ${what}`));
    }
  };

  await attempt("deleting the host interface", async () => {
    const names = new Set([id.hostInterface]);
    // Whatever ADD reported as its host side (in case the naming changed since).
    if (conf.prevResult !== undefined) {
      try {
        for (const i of parsePrevResult(conf.prevResult).interfaces ?? []) {
          if (
            !i.sandbox &&
            i.mac === "ee:ee:ee:ee:ee:ee" &&
            i.name.startsWith(conf.interfacePrefix)
          ) {
            names.add(i.name);
          }
        }
      } catch {
        // A prevResult we cannot read does not stop a DEL.
      }
    }
    for (const name of names) await deps.netlink.deleteHostInterface(name);
  });

  if (session.inProcessIpam) {
    await attempt("releasing the addresses", async () => {
      const { ipam } = await session.datastore();
      await session.withIpamTurn(() => ipam.releaseByHandle(id.handle));
    });
  } else {
    await attempt("running the IPAM plugin's DEL", () => session.delegateIpam("DEL"));
  }

  await attempt("deleting the workload endpoint", async () => {
    const { store } = await session.datastore();
    let wep;
    try {
      wep = await store.get(WORKLOAD_ENDPOINT, id.wepName, { namespace: id.namespace });
    } catch (err) {
      if (isErrorCode(err, "NotFound")) return;
      throw err;
    }
    const owner = (wep.spec as Record<string, unknown> | undefined)?.["containerID"];
    if (owner !== undefined && owner !== id.containerId) {
      deps.log({
        level: "info",
        msg: "workload endpoint belongs to another container now: kept",
        endpoint: id.wepName,
        namespace: id.namespace,
        containerID: owner,
      });
      return;
    }
    try {
      await store.delete(WORKLOAD_ENDPOINT, id.wepName, {
        namespace: id.namespace,
        ...(wep.metadata.resourceVersion !== undefined
          ? { resourceVersion: wep.metadata.resourceVersion }
          : {}),
      });
    } catch (err) {
      // Gone meanwhile, or rewritten (by a new ADD for the same pod): not ours to delete.
      if (!isErrorCode(err, "NotFound") && !isErrorCode(err, "Conflict")) throw err;
    }
    const key = endpointStatusKey(store.prefix, {
      node: id.node,
      namespace: id.namespace,
      name: id.wepName,
    });
    await store.backend.txn({ compare: [], success: [{ type: "delete", key }] });
  });

  const first = failures[0];
  if (!first) return;
  if (failures.length === 1) throw first;
  const details = failures
    .map((f, i) => (i === 0 ? f.details : `${f.message}: ${f.details ?? ""}`))
    .filter((d) => d !== undefined && d !== "")
    .join("; ");
  throw new CniError(first.code, first.message, details, { cause: first });
}
