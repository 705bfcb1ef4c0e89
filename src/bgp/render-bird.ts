// BIRD 2 (2.0.12) configuration text from a BgpModel. Pure and
// deterministic: the same model gives byte-identical text, so the agent
// reloads BIRD only when the text changed. The header carries a hash of the
// body, so a reader (or the agent after a restart) can tell at a glance
// whether a file on disk is what it would render now.
//
// What BIRD holds, per address family F (4, 6):
//
//   twill_blocks<F>   static: a blackhole per own block ──► kernel, peers
//   twill_services<F> static: a blackhole per service range ──► peers only
//   twill_reach<F>    static: host routes to peers (reachableBy) ──► kernel
//   twill_kernel<F>   kernel: learns the agent's workload routes (proto 116)
//                     for borrowed addresses ──► peers; other foreign routes
//                     only resolve next hops; installs what BGP learned (ECMP)
//   twill_direct      direct: the fabric's subnets, so next hops resolve
//   <sessions>        bgp: import inside the pools, never our own blocks;
//                     export what we announce (reflectors: also what they learned)
//
// Local announcements get preference 200 (above BGP's 100): a peer
// announcing the same prefix (anycast) must not displace ours, or we would
// stop announcing it.
import type { BgpCommunity, BgpModel, BgpSession, BgpTimers, ExportedPrefix } from "./bgp-model.js";
import type { BirdPaths } from "./bgp-inputs.js";
import { parseCIDR } from "../api/ip.js";
import type { IPFamily } from "../api/ip.js";

/** Preference of our own announcements (BIRD: static 200, kernel 10, BGP 100). */
const LOCAL_PREFERENCE = 200;
/** How often BIRD rescans interfaces and the kernel table; netlink events arrive in between. */
const SCAN_TIME_S = 10;

const LOG_CLASSES: Record<BgpModel["logSeverity"], string> = {
  Trace: "all",
  Debug: "all",
  Info: "{ info, remote, warning, error, auth, fatal, bug }",
  Warning: "{ warning, error, auth, fatal, bug }",
  Error: "{ error, auth, fatal, bug }",
  Fatal: "{ fatal, bug }",
};

/** Renders bird.conf for `model`; `paths` are named in the header comment. */
export function renderBird(model: BgpModel, paths: BirdPaths): string {
  const body = renderBody(model);
  const header = [
    `# BIRD configuration of twill node "${model.nodeName}", rendered by twill-agent.`,
    "# Do not edit: the agent rewrites this file whenever its inputs change.",
    `# config ${paths.config}, control socket ${paths.socket}`,
    `# body hash: fnv1a64:${fnv1a64(body)}`,
  ];
  return `${header.join("\n")}\n\n${body}`;
}

/** The hash renderBird puts in the header, of everything after the header. */
export function birdConfigHash(text: string): string | undefined {
  const m = /^# body hash: (fnv1a64:[0-9a-f]{16})$/m.exec(text);
  return m?.[1];
}

function renderBody(model: BgpModel): string {
  const families = renderedFamilies(model);
  const out: string[] = [];
  out.push(`router id ${model.routerId};`);
  out.push(`log stderr ${LOG_CLASSES[model.logSeverity]};`);
  if (model.logSeverity === "Trace") out.push("debug protocols all;");
  if (model.logSeverity === "Debug") out.push("debug protocols { states, events };");
  out.push("timeformat log iso long;");
  out.push(
    "# After `bird -R` (restart recovery), the kernel table is left alone until",
    "# peers have re-sent their routes, or this many seconds passed.",
    `graceful restart wait ${model.timers.gracefulRestartWait};`,
    "",
  );
  if (model.problems.length > 0) {
    out.push("# Not honoured (see the agent's log):");
    for (const p of model.problems) out.push(`#   ${oneLine(p)}`);
    out.push("");
  }

  for (const f of families) out.push(...renderFunctions(model, f));

  out.push(
    "# Interface state; without it BIRD installs routes as unreachable.",
    "protocol device twill_device {",
    `  scan time ${SCAN_TIME_S};`,
    "}",
    "",
    "# The fabric's connected subnets, to resolve BGP next hops. Workload",
    "# interfaces carry no addresses and are left out.",
    "protocol direct twill_direct {",
    ...families.map((f) => `  ipv${f};`),
    `  interface ${[
      `-"${model.workloadInterfacePrefix}*"`,
      ...model.ignoredInterfaces.map((i) => `-"${i}"`),
      '"*"',
    ].join(", ")};`,
    "}",
    "",
  );

  for (const f of families) out.push(...renderLocalProtocols(model, f));

  out.push(...renderTemplate(model));
  for (const s of model.sessions) out.push(...renderSession(model, s));
  while (out.at(-1) === "") out.pop();
  return `${out.join("\n")}\n`;
}

/** IPv4 always; IPv6 when anything in the model is IPv6. */
function renderedFamilies(model: BgpModel): IPFamily[] {
  const v6 =
    model.ipv6Address !== undefined ||
    model.sessions.some((s) => s.family === 6) ||
    model.blocks.some(isV6) ||
    model.exported.some((e) => e.family === 6) ||
    model.accepted.some(isV6);
  return v6 ? [4, 6] : [4];
}

function isV6(cidr: string): boolean {
  return cidr.includes(":");
}

function ofFamily(cidrs: readonly string[], f: IPFamily): string[] {
  return cidrs.filter((c) => isV6(c) === (f === 6));
}

/** `net ~ [ ... ]`, or `false` for an empty set (BIRD has no empty set literal). */
function inSet(items: readonly string[]): string {
  return items.length === 0 ? "false" : `net ~ [ ${items.join(", ")} ]`;
}

function renderFunctions(model: BgpModel, f: IPFamily): string[] {
  const bits = f === 4 ? 32 : 128;
  const own = ofFamily(model.rejected, f).map((c) => {
    const len = parseCIDR(c)?.prefixLength ?? bits;
    return len >= bits ? c : `${c}{${len},${bits - 1}}`;
  });
  const exported = model.exported.filter((e) => e.family === f);
  const out = [
    `# ---- IPv${f} prefix sets and filters ----`,
    "",
    "# Our own blocks, and anything inside them but host routes (a borrowed",
    "# address of another node): never accepted from peers.",
    `function twill_own_v${f}() { return ${inSet(own)}; }`,
    "",
    "# Accepted from peers: inside the IP pools (and configured prefixes).",
    `function twill_accepted_v${f}() { return ${inSet(ofFamily(model.accepted, f).map((c) => `${c}+`))}; }`,
    "",
    "# Announced: own blocks, borrowed addresses, service ranges.",
    `function twill_announced_v${f}() { return ${inSet(exported.map((e) => e.cidr))}; }`,
    "",
    "# Borrowed addresses: workloads here whose address lies in another node's block.",
    `function twill_borrowed_v${f}() { return ${inSet(ofFamily(model.borrowed, f))}; }`,
    "",
    ...renderCommunities(exported, f),
    `filter twill_import_v${f} {`,
    `  if twill_own_v${f}() then reject;`,
    `  if twill_accepted_v${f}() then accept;`,
    "  reject;",
    "}",
    "",
    `filter twill_export_v${f} {`,
    `  if ${localSource(f)} && twill_announced_v${f}() then {`,
    `    twill_communities_v${f}();`,
    "    accept;",
    "  }",
    "  reject;",
    "}",
    "",
    "# Route reflectors pass on what they learned as well (BIRD applies the",
    "# iBGP reflection rules: client routes to all, others to clients only).",
    `filter twill_reflect_v${f} {`,
    `  if ${localSource(f)} && twill_announced_v${f}() then {`,
    `    twill_communities_v${f}();`,
    "    accept;",
    "  }",
    "  if source = RTS_BGP then accept;",
    "  reject;",
    "}",
    "",
  ];
  return out;
}

function localSource(f: IPFamily): string {
  return `(proto = "twill_blocks${f}" || proto = "twill_services${f}" || proto = "twill_kernel${f}")`;
}

function renderCommunities(exported: readonly ExportedPrefix[], f: IPFamily): string[] {
  const out = [
    "# Communities per announced prefix (BGPConfiguration prefixAdvertisements).",
    `function twill_communities_v${f}() {`,
  ];
  for (const e of exported) {
    if (e.communities.length === 0) continue;
    out.push(`  if net = ${e.cidr} then {`);
    for (const c of e.communities) out.push(`    ${communityAdd(c)}`);
    out.push("  }");
  }
  out.push("}", "");
  return out;
}

function communityAdd(c: BgpCommunity): string {
  const attr = c.kind === "standard" ? "bgp_community" : "bgp_large_community";
  return `${attr}.add((${c.parts.join(", ")}));`;
}

function renderLocalProtocols(model: BgpModel, f: IPFamily): string[] {
  const blocks = ofFamily(model.blocks, f);
  const services = model.exported.filter((e) => e.family === f && e.origin.startsWith("service-"));
  const reach = model.sessions.filter((s) => s.family === f && s.reachableBy !== undefined);
  return [
    `# ---- IPv${f} local routes and the kernel ----`,
    "",
    "# A blackhole per block we hold: backs the block's announcement, and",
    "# addresses in it that no workload uses are dropped here, never looped.",
    `protocol static twill_blocks${f} {`,
    `  ipv${f} { preference ${LOCAL_PREFERENCE}; };`,
    ...blocks.map((b) => `  route ${b} blackhole;`),
    "}",
    "",
    "# Service ranges (BGPConfiguration): announced only, never installed here.",
    `protocol static twill_services${f} {`,
    `  ipv${f} { preference ${LOCAL_PREFERENCE}; };`,
    ...services.map((s) => `  route ${s.cidr} blackhole;`),
    "}",
    "",
    "# Host routes to peers through a gateway (BGPPeer reachableBy).",
    `protocol static twill_reach${f} {`,
    `  ipv${f};`,
    ...[
      ...new Set(
        reach.map((s) => `  route ${s.peerAddress}/${f === 4 ? 32 : 128} via ${s.reachableBy};`),
      ),
    ],
    "}",
    "",
    "# The kernel's main table. learn: picks up the agent's workload routes",
    `# (proto ${model.workloadRouteProtocol}), announced only for borrowed addresses; other foreign`,
    "# routes (e.g. a default route) only resolve next hops and are never announced.",
    "# persist + graceful restart: a BIRD that stops, is killed or restarts",
    "# removes nothing from the kernel; merge paths: ECMP routes.",
    `protocol kernel twill_kernel${f} {`,
    `  ipv${f} {`,
    "    import filter {",
    `      if krt_source = ${model.workloadRouteProtocol} then {`,
    `        if twill_borrowed_v${f}() then { preference = ${LOCAL_PREFERENCE}; accept; }`,
    "        reject;",
    "      }",
    "      accept;",
    "    };",
    "    export filter {",
    `      if proto = "twill_blocks${f}" || proto = "twill_reach${f}" then accept;`,
    "      if source = RTS_BGP then accept;",
    "      reject;",
    "    };",
    "  };",
    "  learn;",
    "  persist;",
    "  graceful restart;",
    "  merge paths on;",
    `  scan time ${SCAN_TIME_S};`,
    "}",
    "",
  ];
}

function timerLines(t: BgpTimers, indent: string): string[] {
  return [
    `${indent}connect delay time ${t.connectDelayTime};`,
    `${indent}connect retry time ${t.connectRetryTime};`,
    `${indent}error wait time ${t.errorWaitTime[0]},${t.errorWaitTime[1]};`,
    `${indent}hold time ${t.holdTime};`,
    `${indent}keepalive time ${t.keepaliveTime};`,
  ];
}

/** The timer lines of `t` that differ from the template's `base`. */
function timerOverrides(t: BgpTimers, base: BgpTimers, indent: string): string[] {
  const want = timerLines(t, indent);
  const have = new Set(timerLines(base, indent));
  return want.filter((line) => !have.has(line));
}

function renderTemplate(model: BgpModel): string[] {
  return [
    "# ---- BGP sessions ----",
    "",
    "# Timers for fast convergence: a new peer is dialled at once and every",
    "# second after; a dead host is noticed within the hold time. A BIRD that",
    "# is killed closes its sessions, and graceful restart keeps its routes.",
    "template bgp twill_bgp {",
    ...timerLines(model.timers, "  "),
    "  graceful restart on;",
    "}",
    "",
  ];
}

function renderSession(model: BgpModel, s: BgpSession): string[] {
  const out: string[] = [];
  const peer = s.peerNode !== undefined ? `, node ${s.peerNode}` : "";
  out.push(`# ${s.kind}: ${oneLine(s.source)}${peer}`);
  if (s.disabledReason !== undefined) out.push(`# disabled: ${oneLine(s.disabledReason)}`);
  out.push(`protocol bgp ${s.name} from twill_bgp {`);
  if (s.disabledReason !== undefined) out.push("  disabled;");
  out.push(`  local port ${model.listenPort} as ${s.localAS};`);
  out.push(`  neighbor ${s.peerAddress} port ${s.port} as ${s.peerAS};`);
  if (s.sourceAddress !== undefined) out.push(`  source address ${s.sourceAddress};`);
  if (model.strictBind && s.sourceAddress !== undefined) out.push("  strict bind on;");
  if (s.connection === "direct") out.push("  direct;");
  else
    out.push(s.ttlSecurityHops !== undefined ? `  multihop ${s.ttlSecurityHops};` : "  multihop;");
  if (s.ttlSecurityHops !== undefined) out.push("  ttl security on;");
  if (s.passive) out.push("  passive on;");
  if (s.password !== undefined) out.push(`  password "${s.password}";`);
  if (s.rrClient) {
    out.push("  rr client;");
    if (s.clusterId !== undefined) out.push(`  rr cluster id ${s.clusterId};`);
  }
  if (s.allowLocalAS !== undefined) out.push(`  allow local as ${s.allowLocalAS};`);
  out.push(`  graceful restart time ${s.restartTime};`);
  out.push(...timerOverrides(s.timers, model.timers, "  "));
  const f = s.family;
  out.push(`  ipv${f} {`);
  out.push(`    import filter twill_import_v${f};`);
  out.push(`    export filter ${s.exportLearned ? "twill_reflect" : "twill_export"}_v${f};`);
  out.push("    add paths on;");
  if (s.nextHop === "self") out.push("    next hop self;");
  if (s.nextHop === "keep") out.push("    next hop keep;");
  out.push("  };");
  out.push("}", "");
  return out;
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}

/** FNV-1a, 64 bits, over UTF-16 code units, as 16 hex digits. */
export function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  const mask = 0xffffffffffffffffn;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * prime) & mask;
  }
  return h.toString(16).padStart(16, "0");
}
