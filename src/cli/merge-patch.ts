// JSON merge patch (RFC 7386): objects in the patch are merged key by key
// into the target, `null` removes a key, anything else (arrays included)
// replaces the target's value. Pure; the inputs are not modified.

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The result of applying `patch` to `target`, per RFC 7386 section 2. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}
