// Why each BGP session exists (mesh, global, node, reflector, rr-client), as
// `twill node status` shows it. BIRD does not know; two sources do:
//
// 1. bird.conf as render-bird.ts writes it: each session is preceded by a
//    comment "# <kind>: <source>[, node <peer node>]" (and possibly a
//    "# disabled: …" line) before "protocol bgp <name> …".
// 2. The protocol name, when the file cannot be read: render-bird.ts names
//    sessions "<scope>[6]_<peer address>[_port_<n>]" with scope mesh, global
//    or node (a reflector session keeps the scope of what made it).
//
// Pure: the caller reads the file.

export type SessionKindName = "mesh" | "global" | "node" | "reflector" | "rr-client" | "unknown";

export interface SessionOrigin {
  kind: SessionKindName;
  /** What made the session: "node-to-node mesh" or `BGPPeer "<name>"`. */
  source?: string;
  /** The twill Node behind the peer address. */
  peerNode?: string;
}

const KINDS = new Set<string>(["mesh", "global", "node", "reflector", "rr-client"]);

/** Session name → origin, from the comments render-bird.ts writes. */
export function sessionOriginsFromConfig(text: string): Map<string, SessionOrigin> {
  const out = new Map<string, SessionOrigin>();
  let pending: SessionOrigin | undefined;
  for (const line of text.split("\n")) {
    const comment = /^# ([a-z-]+): (.*)$/.exec(line);
    if (comment && KINDS.has(comment[1] ?? "")) {
      const rest = comment[2] ?? "";
      const node = /^(.*), node (\S+)$/.exec(rest);
      pending = { kind: comment[1] as SessionKindName, source: node ? (node[1] ?? "") : rest };
      if (node?.[2] !== undefined) pending.peerNode = node[2];
      continue;
    }
    const proto = /^protocol bgp (\S+)/.exec(line);
    if (proto) {
      if (pending) out.set(proto[1] ?? "", pending);
      pending = undefined;
      continue;
    }
    if (!line.startsWith("#")) pending = undefined;
  }
  return out;
}

/** The kind a session name tells (its scope), without the configuration. */
export function sessionKindFromName(name: string): SessionKindName {
  const m = /^(mesh|global|node)6?_/.exec(name);
  return (m?.[1] as SessionKindName | undefined) ?? "unknown";
}
