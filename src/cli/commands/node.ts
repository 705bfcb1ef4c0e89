// `twill node status | routes`: this node's BIRD as seen through its control
// socket (<bird dir>/bird.ctl), as `calicoctl node status` does for Calico.
// No datastore: it works when etcd does not, which is when it is needed.
//
//   --bird-dir DIR, else /var/run/twill/bird/<node>, where <node> is --node,
//   else $TWILL_NODE_NAME, else the host name (the agent's own defaults).
//
// A session's kind (mesh, global, node, reflector, rr-client) comes from the
// comments the agent writes into bird.conf, else from the protocol's name
// (src/bgp/session-kinds.ts).
import { hostname } from "node:os";
import { Option } from "commander";
import type { Command } from "commander";
import { BirdControl } from "../../bgp/bird-control.js";
import type { BirdProtocol, BirdRoute, BirdStatus } from "../../bgp/bird-control.js";
import { defaultBirdDir } from "../../bgp/bird-dir.js";
import { birdPaths } from "../../bgp/bgp-inputs.js";
import { sessionKindFromName, sessionOriginsFromConfig } from "../../bgp/session-kinds.js";
import type { SessionOrigin } from "../../bgp/session-kinds.js";
import { TwillError } from "../../util/errors.js";
import { EXIT } from "../cli-errors.js";
import type { CommandContext } from "../context.js";
import { formatTable } from "../format-table.js";

interface NodeOptions {
  node?: string;
  birdDir?: string;
  output?: "json" | "wide";
}

/** One BGP session as `twill node status` reports it. */
export interface SessionReport {
  name: string;
  kind: SessionOrigin["kind"];
  source?: string;
  peerNode?: string;
  peerAddress: string;
  peerAS?: number;
  /** BGP state (Established, Active, Connect, …), or the protocol's ("down") when it has none. */
  state: string;
  /** BIRD's protocol state: up, start, down. */
  protocolState: string;
  since: string;
  info: string;
  lastError?: string;
  routes: { imported: number; exported: number; preferred: number; filtered: number };
}

export interface StatusReport {
  node: string;
  birdDir: string;
  bird: BirdStatus;
  sessions: SessionReport[];
}

export interface RoutesReport {
  node: string;
  birdDir: string;
  /** Exported to at least one peer. */
  announced: { prefix: string; type: string; protocol: string; peers: string[] }[];
  /** Imported from peers. */
  learned: {
    prefix: string;
    peer: string;
    session: string;
    best: boolean;
    nexthops: BirdRoute["nexthops"];
    asPath?: string;
  }[];
  /** Sessions whose exports could not be listed (not up). */
  notUp: string[];
}

export function registerNode(
  program: Command,
  ctx: CommandContext,
  env: Readonly<Record<string, string | undefined>>,
): void {
  const node = program
    .command("node")
    .description("This node's BGP speaker (BIRD): sessions and routes, from its control socket");
  const common = (cmd: Command) =>
    cmd
      .option(
        "--node <name>",
        "the node whose BIRD to ask (default $TWILL_NODE_NAME, else the host name)",
      )
      .option("--bird-dir <dir>", "its BIRD directory (default /var/run/twill/bird/<node>)")
      .addOption(
        new Option("-o, --output <format>", "json, or wide (more columns)").choices([
          "json",
          "wide",
        ]),
      );

  common(
    node
      .command("status")
      .description("BIRD's state and every BGP session: peer, kind, state, since, routes"),
  )
    .addHelpText(
      "after",
      `
Kinds: mesh (node-to-node mesh), global (a BGPPeer for every node), node (a
BGPPeer for some nodes), reflector (the peer is a route reflector), rr-client
(this node reflects for the peer). IMPORTED/EXPORTED count routes.

Exits 6 when BIRD does not answer (not running, or another --bird-dir).

Examples:
  twill node status
  twill node status --node host-2 -o json
  twill node status --bird-dir /run/lab/bird/host-1`,
    )
    .action((options: NodeOptions) => status(ctx, env, options));

  common(
    node
      .command("routes")
      .description("What this node announces to its peers and what it learned from them"),
  )
    .addHelpText(
      "after",
      `
Announced: routes BIRD exports to at least one peer (this node's blocks,
borrowed addresses, service ranges; a route reflector also what it reflects).
Learned: routes BIRD imported from peers; BEST marks the one in use.

Examples:
  twill node routes
  twill node routes --node host-1 -o json`,
    )
    .action((options: NodeOptions) => routes(ctx, env, options));
}

function target(
  env: Readonly<Record<string, string | undefined>>,
  options: NodeOptions,
): { node: string; dir: string } {
  const node = options.node || env["TWILL_NODE_NAME"] || hostname();
  return { node, dir: options.birdDir || env["TWILL_BIRD_DIR"] || defaultBirdDir(node) };
}

/** Connects, or reports why not (exit 6) and returns undefined. */
async function connect(
  ctx: CommandContext,
  node: string,
  dir: string,
): Promise<BirdControl | undefined> {
  const { socket } = birdPaths(dir);
  try {
    return await BirdControl.connect(socket);
  } catch (err) {
    if (!(err instanceof TwillError)) throw err;
    ctx.output.err(
      `error: BIRD of node "${node}" does not answer on ${socket}: ${err.message}\n` +
        "Is the agent running with BGP enabled? Give --node or --bird-dir for another node.\n",
    );
    ctx.fail(EXIT.unavailable);
    return undefined;
  }
}

async function origins(ctx: CommandContext, dir: string): Promise<Map<string, SessionOrigin>> {
  try {
    return sessionOriginsFromConfig(await ctx.files.readFile(birdPaths(dir).config));
  } catch {
    return new Map();
  }
}

export function sessionReports(
  protocols: readonly BirdProtocol[],
  known: ReadonlyMap<string, SessionOrigin>,
): SessionReport[] {
  return protocols
    .filter((p) => p.proto === "BGP")
    .map((p): SessionReport => {
      const origin = known.get(p.name) ?? { kind: sessionKindFromName(p.name) };
      const r: SessionReport = {
        name: p.name,
        kind: origin.kind,
        peerAddress: p.bgp?.neighborAddress ?? "",
        state: p.bgp?.state ?? p.state,
        protocolState: p.state,
        since: p.since,
        info: p.info,
        routes: p.routes,
      };
      if (origin.source !== undefined) r.source = origin.source;
      if (origin.peerNode !== undefined) r.peerNode = origin.peerNode;
      if (p.bgp?.neighborAs !== undefined) r.peerAS = p.bgp.neighborAs;
      if (p.bgp?.lastError !== undefined) r.lastError = p.bgp.lastError;
      return r;
    });
}

/** A report as JSON (`-o json`) or as the text `format` makes of it (`wide`: more columns). */
function printReport<R>(
  ctx: CommandContext,
  output: NodeOptions["output"],
  report: R,
  format: (report: R, wide: boolean) => string,
): void {
  if (output === "json") ctx.output.out(`${JSON.stringify(report, null, 2)}\n`);
  else ctx.output.out(format(report, output === "wide"));
}

async function status(
  ctx: CommandContext,
  env: Readonly<Record<string, string | undefined>>,
  options: NodeOptions,
): Promise<void> {
  const { node, dir } = target(env, options);
  const c = await connect(ctx, node, dir);
  if (!c) return;
  let report: StatusReport;
  try {
    const bird = await c.showStatus();
    const sessions = sessionReports(await c.showProtocols(), await origins(ctx, dir));
    report = { node, birdDir: dir, bird, sessions };
  } finally {
    c.close();
  }
  printReport(ctx, options.output, report, formatStatus);
}

export function formatStatus(r: StatusReport, wide: boolean): string {
  const b = r.bird;
  const lines = [
    `BIRD ${b.version} of node ${r.node}: ${b.message || "state unknown"}`,
    `  router ID ${b.routerId}, started ${b.lastReboot ?? "?"}, last reconfigured ${b.lastReconfiguration ?? "?"}`,
    `  directory ${r.birdDir}`,
  ];
  if (r.sessions.length === 0) return `${lines.join("\n")}\n\nNo BGP sessions.\n`;
  const headers = [
    "Peer address",
    "Kind",
    "Peer node",
    "State",
    "Since",
    "Imported",
    "Exported",
    "Info",
  ];
  if (wide) headers.push("AS", "Session", "Source");
  const rows = r.sessions.map((s) => {
    const info =
      s.lastError ?? (s.info === s.state ? "" : s.info.replace(new RegExp(`^${s.state}\\s*`), ""));
    const row = [
      s.peerAddress,
      s.kind,
      s.peerNode ?? "",
      s.state,
      s.since,
      String(s.routes.imported),
      String(s.routes.exported),
      info,
    ];
    if (wide) row.push(s.peerAS === undefined ? "" : String(s.peerAS), s.name, s.source ?? "");
    return row;
  });
  const up = r.sessions.filter((s) => s.state === "Established").length;
  return `${lines.join("\n")}\n\n${formatTable(headers, rows)}\n${up} of ${r.sessions.length} sessions established.\n`;
}

async function routes(
  ctx: CommandContext,
  env: Readonly<Record<string, string | undefined>>,
  options: NodeOptions,
): Promise<void> {
  const { node, dir } = target(env, options);
  const c = await connect(ctx, node, dir);
  if (!c) return;
  const report: RoutesReport = { node, birdDir: dir, announced: [], learned: [], notUp: [] };
  try {
    const sessions = (await c.showProtocols()).filter((p) => p.proto === "BGP");
    const announced = new Map<string, RoutesReport["announced"][number]>();
    for (const s of sessions) {
      const peer = s.bgp?.neighborAddress ?? s.name;
      if (s.state !== "up") {
        report.notUp.push(peer);
        continue;
      }
      for (const r of await c.showRoutes({ export: s.name })) {
        const key = `${r.prefix}|${r.protocol}`;
        const a = announced.get(key) ?? {
          prefix: r.prefix,
          type: r.type,
          protocol: r.protocol,
          peers: [],
        };
        a.peers.push(peer);
        announced.set(key, a);
      }
      for (const r of await c.showRoutes({ protocol: s.name, all: true })) {
        const l: RoutesReport["learned"][number] = {
          prefix: r.prefix,
          peer,
          session: s.name,
          best: r.primary,
          nexthops: r.nexthops,
        };
        const path = r.attributes["BGP.as_path"];
        if (path !== undefined) l.asPath = path;
        report.learned.push(l);
      }
    }
    report.announced = [...announced.values()].sort((a, b) => cmpPrefix(a.prefix, b.prefix));
    report.learned.sort((a, b) => cmpPrefix(a.prefix, b.prefix) || (a.peer < b.peer ? -1 : 1));
  } finally {
    c.close();
  }
  printReport(ctx, options.output, report, formatRoutes);
}

export function formatRoutes(r: RoutesReport, wide: boolean): string {
  const out: string[] = [];
  out.push(`Announced by node ${r.node}: ${r.announced.length}`);
  if (r.announced.length > 0) {
    const headers = wide ? ["Prefix", "To peers", "Origin", "Type"] : ["Prefix", "To peers"];
    out.push(
      formatTable(
        headers,
        r.announced.map((a) => {
          const row = [a.prefix, a.peers.join(", ")];
          if (wide) row.push(a.protocol, a.type);
          return row;
        }),
      ).trimEnd(),
    );
  }
  out.push("", `Learned from peers: ${r.learned.length}`);
  if (r.learned.length > 0) {
    const headers = ["Prefix", "Next hop", "From", "Best"];
    if (wide) headers.push("AS path", "Session");
    out.push(
      formatTable(
        headers,
        r.learned.map((l) => {
          const hops = l.nexthops
            .map((h) =>
              h.via !== undefined
                ? `${h.via}${h.dev ? ` dev ${h.dev}` : ""}`
                : `dev ${h.dev ?? "?"}`,
            )
            .join(", ");
          const row = [l.prefix, hops, l.peer, l.best ? "yes" : "no"];
          if (wide) row.push(l.asPath ?? "", l.session);
          return row;
        }),
      ).trimEnd(),
    );
  }
  if (r.notUp.length > 0)
    out.push("", `Sessions not up (nothing exchanged): ${r.notUp.join(", ")}`);
  return `${out.join("\n")}\n`;
}

/** IPv4 before IPv6, then numerically by address, then by length. */
function cmpPrefix(a: string, b: string): number {
  const key = (p: string) => {
    const [addr = "", len = "0"] = p.split("/");
    if (!addr.includes(":")) {
      return `4${addr
        .split(".")
        .map((o) => o.padStart(3, "0"))
        .join(".")}/${len.padStart(3, "0")}`;
    }
    return `6${expand6(addr)}/${len.padStart(3, "0")}`;
  };
  const ka = key(a);
  const kb = key(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function expand6(addr: string): string {
  const [head = "", tail = ""] = addr.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === "" ? [] : tail.split(":");
  const fill = addr.includes("::") ? Array(Math.max(0, 8 - h.length - t.length)).fill("0") : [];
  return [...h, ...fill, ...t].map((g) => g.padStart(4, "0")).join(":");
}
