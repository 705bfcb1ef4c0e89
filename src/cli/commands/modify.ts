// The read-change-validate-write cycle behind `patch` and `label`: read the
// stored resource, compute the new document, validate it, write it back with
// compare-and-swap on the revision that was read (a concurrent writer makes
// it fail with Conflict, exit 5), or write nothing when nothing changed.
import type { KindInfo } from "../../api/kinds.js";
import type { Resource } from "../../api/resource.js";
import { validateResource } from "../../api/validate.js";
import { EXIT, rewordStoreError } from "../cli-errors.js";
import { formatInvalid } from "../check-documents.js";
import type { CommandContext } from "../context.js";
import { exportable, resourceRef } from "../print-resources.js";
import { sameContent } from "../same-content.js";
import { TwillError } from "../../util/errors.js";

export interface ModifyRequest {
  kind: KindInfo;
  name: string;
  namespace: string | undefined;
  /** Where the change came from, for error lines: "patch", "labels". */
  source: string;
  /** The new document from the stored one (already stripped to what can be applied). */
  change(current: Resource): unknown;
  /** "patched", "labeled". */
  done: string;
  /** "patched (no change)", "not labeled". */
  unchanged: string;
}

function withoutRevision(r: Resource): Resource {
  const { resourceVersion: _ignored, ...metadata } = r.metadata;
  return { ...r, metadata };
}

/** Refuses a change to what identifies the resource. */
function checkIdentity(before: Resource, after: unknown): void {
  const a = (typeof after === "object" && after !== null ? after : {}) as {
    apiVersion?: unknown;
    kind?: unknown;
    metadata?: { name?: unknown; namespace?: unknown };
  };
  const fields: [string, unknown, unknown][] = [
    ["apiVersion", before.apiVersion, a.apiVersion],
    ["kind", before.kind, a.kind],
    ["metadata.name", before.metadata.name, a.metadata?.name],
    ["metadata.namespace", before.metadata.namespace, a.metadata?.namespace],
  ];
  for (const [path, was, now] of fields) {
    if (was !== now) {
      throw new TwillError(
        "Invalid",
        `${path} cannot be changed (from ${JSON.stringify(was)} to ${JSON.stringify(now ?? null)})`,
      );
    }
  }
}

export async function modifyResource(ctx: CommandContext, req: ModifyRequest): Promise<void> {
  const store = await ctx.store();
  const opts = req.namespace === undefined ? {} : { namespace: req.namespace };
  const reword = (err: unknown) => rewordStoreError(err, req.kind, req.name, req.namespace);
  let current: Resource;
  try {
    current = await store.get(req.kind, req.name, opts);
  } catch (err) {
    throw reword(err);
  }
  const base = exportable(current);
  const next = req.change(structuredClone(base));
  checkIdentity(current, next);

  // Server-set fields come from the stored copy; the revision that was read
  // guards the write unless the change names one itself.
  const n = next as Resource;
  const metadata = { ...n.metadata };
  if (current.metadata.uid !== undefined) metadata.uid = current.metadata.uid;
  if (current.metadata.creationTimestamp !== undefined)
    metadata.creationTimestamp = current.metadata.creationTimestamp;
  if (metadata.resourceVersion === undefined && current.metadata.resourceVersion !== undefined) {
    metadata.resourceVersion = current.metadata.resourceVersion;
  }
  const doc = { ...n, metadata };

  const result = validateResource(doc);
  if (!result.ok) {
    ctx.output.err(
      formatInvalid([
        { source: req.source, label: `${current.kind} "${req.name}"`, errors: result.errors },
      ]),
    );
    ctx.output.err(
      `error: the ${req.source} leaves ${resourceRef(req.kind, req.name)} invalid; nothing was written\n`,
    );
    ctx.fail(EXIT.failed);
    return;
  }
  const before = validateResource(base);
  const comparable = before.ok ? before.resource : base;
  if (sameContent(withoutRevision(result.resource), withoutRevision(comparable))) {
    ctx.output.out(`${resourceRef(req.kind, req.name)} ${req.unchanged}\n`);
    return;
  }
  try {
    await store.update(result.resource);
  } catch (err) {
    throw reword(err);
  }
  ctx.output.out(`${resourceRef(req.kind, req.name)} ${req.done}\n`);
}
