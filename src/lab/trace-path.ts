// Who is who on a traceroute through the lab: every address of the plan
// (interfaces, bridges) and of the workloads, named by its machine, and
// traceroute's output read back as hops. Pure: lab-trace.ts runs traceroute.
//
//    1  10.1.1.11    0.205 ms  h1      host
//    2  10.1.1.1     0.204 ms  tor1    ToR router
//    3  10.1.101.1   0.018 ms  spine1  spine router
//   ...
//   h1w1 → h1 → tor1 → spine1 → tor2 → h4 → h4w2
import type { WorkloadRecord } from "./lab-state.js";
import type { LabPlan, NamespaceRole } from "./topology.js";

export interface AddressOwner {
  /** The machine's short name: h1, tor2, spine1, plain1, h4w2. */
  name: string;
  role: NamespaceRole;
}

export const ROLE_TEXT: Record<NamespaceRole, string> = {
  host: "host",
  tor: "ToR router",
  spine: "spine router",
  fabric: "fabric router",
  plain: "plain machine",
  workload: "workload",
  mgmt: "management",
};

/** Every address in the lab (without prefix length) and the machine holding it. */
export function addressBook(
  plan: LabPlan,
  workloads: readonly WorkloadRecord[],
): Map<string, AddressOwner> {
  const book = new Map<string, AddressOwner>();
  for (const ns of plan.namespaces) {
    for (const itf of [...ns.bridges, ...ns.interfaces]) {
      for (const cidr of itf.addresses) {
        book.set(cidr.split("/")[0] ?? cidr, { name: ns.short, role: ns.role });
      }
    }
  }
  for (const w of workloads) {
    for (const a of [w.ipv4, w.ipv6]) {
      if (a !== undefined) book.set(a, { name: w.name, role: "workload" });
    }
  }
  return book;
}

export interface TraceHop {
  ttl: number;
  /** The address that answered; undefined for "*" (no answer). */
  addr: string | undefined;
  /** The rest of traceroute's line: round-trip time, or "*". */
  rtt: string;
}

/** The hop lines of `traceroute -n` output (the header line is skipped). */
export function parseTraceroute(text: string): TraceHop[] {
  const hops: TraceHop[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(\d+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const addr = m[2] === "*" ? undefined : m[2];
    hops.push({ ttl: Number(m[1]), addr, rtt: (m[3] ?? "").trim() });
  }
  return hops;
}

/** traceroute's hops in columns, each with the name and role of the machine that answered. */
export function annotateTrace(
  hops: readonly TraceHop[],
  book: ReadonlyMap<string, AddressOwner>,
): string[] {
  const addrWidth = Math.max(1, ...hops.map((h) => (h.addr ?? "*").length));
  const rttWidth = Math.max(0, ...hops.map((h) => h.rtt.length));
  const nameWidth = Math.max(
    0,
    ...hops.map((h) => (h.addr && book.get(h.addr)?.name)?.length ?? 0),
  );
  return hops.map((h) => {
    const owner = h.addr === undefined ? undefined : book.get(h.addr);
    const note =
      owner !== undefined
        ? `${owner.name.padEnd(nameWidth)}  ${ROLE_TEXT[owner.role]}`
        : h.addr === undefined
          ? "(no answer)"
          : "(not a lab address)";
    const cols = [
      String(h.ttl).padStart(2),
      (h.addr ?? "*").padEnd(addrWidth),
      h.rtt.padEnd(rttWidth),
    ];
    return `${cols.join("  ")}  ${note}`;
  });
}

/** "h1w1 → h1 → tor1 → spine1 → tor2 → h4 → h4w2"; "?" for a hop that did not answer. */
export function pathLine(
  from: string,
  hops: readonly TraceHop[],
  book: ReadonlyMap<string, AddressOwner>,
): string {
  const names = hops.map((h) => (h.addr === undefined ? "?" : (book.get(h.addr)?.name ?? h.addr)));
  return [from, ...names].join(" → ");
}
