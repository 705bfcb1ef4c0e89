// The connectivity matrix as data, and its text form: what was expected
// between which namespaces, what a probe saw, and a table a person can read
// when a test fails or `twill lab check` reports. Pure: no I/O; the probing
// itself is in netcheck.ts.
//
//   connectivity: 6 cases, 1 mismatch
//   to \ from            wa      wb     wc
//   tcp 10.65.0.2:8080   allow   .      deny
//   udp 10.65.0.2:5353   deny    .      DENY (want allow)
//   icmp 10.65.0.2       allow   allow  .
//   mismatches:
//     wc -> udp 10.65.0.2:5353: want allow, got deny: no reply within 1000 ms (3 attempts)

/** Something to reach: a TCP or UDP port, or an ICMP echo (ICMPv6 for an IPv6 address). */
export interface ProbeTarget {
  proto: "tcp" | "udp" | "icmp";
  addr: string;
  /** Required for tcp and udp. */
  port?: number;
  /** Send from this local address (it must be on an interface of the namespace). */
  source?: string;
}

export interface ProbeOutcome {
  target: ProbeTarget;
  /** TCP: the handshake completed; UDP: the responder answered; ICMP: an echo reply came. */
  ok: boolean;
  /** What happened, for people: "connected, seen as 10.65.0.1", "no reply within 1000 ms". */
  detail: string;
  /** The source address the responder saw (TCP and UDP to a responder): shows NAT. */
  seenAs?: string;
}

export interface MatrixCase {
  /** The namespace to probe from (a name for `ip netns exec`, or a path). */
  from: string;
  target: ProbeTarget;
  /** Whether policy should let it through. */
  allowed: boolean;
}

export interface MatrixResult extends MatrixCase {
  /** The last probe's outcome. */
  outcome: ProbeOutcome;
  /** outcome.ok === allowed. */
  matched: boolean;
  /** How many times it was probed. */
  attempts: number;
}

/** "tcp 10.65.0.2:8080", "icmp fd00::1", "udp [fd00::1]:53 from 10.65.0.99". */
export function targetText(t: ProbeTarget): string {
  const host = t.addr.includes(":") && t.port !== undefined ? `[${t.addr}]` : t.addr;
  const where = t.port === undefined ? host : `${host}:${t.port}`;
  return `${t.proto} ${where}${t.source === undefined ? "" : ` from ${t.source}`}`;
}

/**
 * The inverse of targetText: "tcp 10.65.0.2:8080", "udp [fd00::2]:53",
 * "icmp 10.65.0.2", each optionally followed by "from <source>". Undefined
 * when the text is not such a target.
 */
export function parseTarget(text: string): ProbeTarget | undefined {
  const m = /^(tcp|udp|icmp) (\S+)(?: from (\S+))?$/.exec(text.trim());
  if (!m) return undefined;
  const where = m[2] ?? "";
  let addr = where;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(where);
  if (bracketed) {
    addr = bracketed[1] ?? "";
    port = bracketed[2];
  } else if (where.split(":").length === 2) {
    // IPv4 with a port; an IPv6 address without brackets has no port.
    [addr = "", port] = where.split(":");
  }
  const t: ProbeTarget = { proto: m[1] as ProbeTarget["proto"], addr };
  if (port !== undefined) t.port = /^[0-9]+$/.test(port) ? Number(port) : NaN;
  if (m[3] !== undefined) t.source = m[3];
  return targetProblem(t) === undefined ? t : undefined;
}

/** Checks a target before it is probed; the message names what is wrong. */
export function targetProblem(t: ProbeTarget): string | undefined {
  if (t.proto !== "tcp" && t.proto !== "udp" && t.proto !== "icmp") {
    return `unknown protocol ${JSON.stringify(t.proto)}`;
  }
  if (typeof t.addr !== "string" || !/^[0-9a-fA-F.:]+$/.test(t.addr)) {
    return `address ${JSON.stringify(t.addr)} is not an IP address`;
  }
  if (t.proto === "icmp") {
    return t.port === undefined ? undefined : "icmp has no port";
  }
  if (t.port === undefined || !Number.isInteger(t.port) || t.port < 1 || t.port > 65535) {
    return `${t.proto} needs a port within 1-65535, got ${String(t.port)}`;
  }
  return undefined;
}

/** The result of comparing one outcome with its case. */
export function resultOf(c: MatrixCase, outcome: ProbeOutcome, attempts: number): MatrixResult {
  return { ...c, outcome, matched: outcome.ok === c.allowed, attempts };
}

const word = (ok: boolean) => (ok ? "allow" : "deny");

export interface FormatOptions {
  /** How a source namespace is shown (default: without the prefix all sources share). */
  label?: (from: string) => string;
}

/** Strips the longest prefix ending in "-" that every name shares ("twt-ab12cd-"). */
function commonPrefixLabel(names: readonly string[]): (name: string) => string {
  if (names.length < 2) return (n) => n;
  let prefix = names[0] ?? "";
  for (const n of names) {
    while (!n.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  const cut = prefix.lastIndexOf("-") + 1;
  return (n) => (cut > 0 && n.length > cut ? n.slice(cut) : n);
}

function pad(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 2)))
      .join("")
      .trimEnd(),
  );
}

/**
 * The results as a table, targets down and sources across. A cell says what
 * happened ("allow", "deny"); a mismatch in capitals with what was wanted;
 * "." where that pair was not probed. Mismatches are listed below with the
 * probe's detail.
 */
export function formatMatrix(
  results: readonly MatrixResult[],
  options: FormatOptions = {},
): string {
  const froms: string[] = [];
  const targets: string[] = [];
  const cells = new Map<string, string>();
  for (const r of results) {
    if (!froms.includes(r.from)) froms.push(r.from);
    const t = targetText(r.target);
    if (!targets.includes(t)) targets.push(t);
    const got = word(r.outcome.ok);
    cells.set(
      `${t}\n${r.from}`,
      r.matched ? got : `${got.toUpperCase()} (want ${word(r.allowed)})`,
    );
  }
  const label = options.label ?? commonPrefixLabel(froms);
  const mismatches = results.filter((r) => !r.matched);
  const n = mismatches.length;
  const lines = [
    `connectivity: ${results.length} case${results.length === 1 ? "" : "s"}, ${n} mismatch${n === 1 ? "" : "es"}`,
    ...pad([
      ["to \\ from", ...froms.map(label)],
      ...targets.map((t) => [t, ...froms.map((f) => cells.get(`${t}\n${f}`) ?? ".")]),
    ]),
  ];
  if (n > 0) {
    lines.push("mismatches:");
    for (const r of mismatches) {
      lines.push(
        `  ${label(r.from)} -> ${targetText(r.target)}: want ${word(r.allowed)}, got ${word(r.outcome.ok)}: ${r.outcome.detail} (${r.attempts} attempt${r.attempts === 1 ? "" : "s"})`,
      );
    }
  }
  return lines.join("\n");
}
