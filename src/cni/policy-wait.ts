// ADD's wait for the agent: the endpoint's policy must be programmed before
// the workload starts (docs/cni.md, "The policy wait"). The agent writes a
// status key per endpoint (src/datastore/endpoint-status.ts); this watches
// it (from the revision ADD wrote the endpoint at, or after reading it)
// until it says "programmed" at a revision at least as new as the endpoint
// ADD wrote, or the time is up.
import type { Backend } from "../datastore/backend.js";
import { isProgrammedAt, parseEndpointStatus } from "../datastore/endpoint-status.js";
import { CNI_ERROR, CniError } from "./cni-error.js";

export interface PolicyWaitRequest {
  backend: Backend;
  /** The endpoint's status key. */
  key: string;
  /** The WorkloadEndpoint's resourceVersion as written by ADD. */
  resourceVersion: string;
  /**
   * The revision ADD wrote the endpoint at, when known: no status before it
   * can be the answer, so the wait watches from there without reading first.
   */
  fromRevision?: number;
  timeoutMs: number;
  /** What the endpoint is, for messages. */
  what: string;
}

/** Resolves once programmed; CniError 11 (try again later) when the time is up. */
export async function waitForProgrammed(req: PolicyWaitRequest): Promise<void> {
  const { backend, key, resourceVersion } = req;
  // A timer of our own, not AbortSignal.timeout: that one does not keep the
  // process alive, and a watch may hold nothing else that does.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), req.timeoutMs);
  const signal = deadline.signal;
  let lastNote = "the agent has reported nothing for it";
  const consider = (value: string): boolean => {
    let status;
    try {
      status = parseEndpointStatus(value, key);
    } catch (err) {
      lastNote = (err as Error).message;
      return false;
    }
    if (isProgrammedAt(status, resourceVersion)) return true;
    lastNote =
      status.state === "error"
        ? `the agent reports an error at revision ${status.resourceVersion}: ${status.message ?? "(no message)"}`
        : `the agent reports revision ${status.resourceVersion} programmed, not yet ${resourceVersion}`;
    return false;
  };
  let from = req.fromRevision;
  try {
    for (;;) {
      let revision: number;
      if (from !== undefined && Number.isSafeInteger(from) && from >= 0) {
        revision = from;
      } else {
        // list (not get) for the revision to watch from; the key is a prefix of others.
        const listed = await backend.list(key);
        const current = listed.entries.find((e) => e.key === key);
        if (current && consider(current.value)) return;
        revision = listed.revision;
      }
      from = undefined; // After a compaction: read, then watch.
      let compacted = false;
      for await (const ev of backend.watch(key, { fromRevision: revision, signal })) {
        if (ev.type === "compacted") {
          compacted = true;
          break;
        }
        if (ev.type === "put" && ev.entry.key === key && consider(ev.entry.value)) return;
        if (ev.type === "delete" && ev.key === key) lastNote = "the agent deleted its status";
      }
      if (!compacted) break;
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  throw new CniError(
    CNI_ERROR.tryAgainLater,
    "timed out waiting for the endpoint's policy",
    `${req.what}: not programmed by the agent within ${req.timeoutMs / 1000} s (${lastNote}); is twill-agent running on this node?`,
  );
}
