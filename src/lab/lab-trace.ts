// `twill lab traceroute FROM TO`: traceroute from one lab machine to
// another (or to an address), each hop named by the machine that answered
// (trace-path.ts). In a twill lab every hop is a host or a router: there is
// no tunnel between hosts to hide the fabric.
import { TwillError } from "../util/errors.js";
import { labInfo } from "./lab.js";
import type { LabSettings } from "./lab.js";
import { run } from "./lab-os.js";
import { addressBook, annotateTrace, parseTraceroute, pathLine, ROLE_TEXT } from "./trace-path.js";
import type { AddressOwner, TraceHop } from "./trace-path.js";

export interface LabTrace {
  from: string;
  /** What TO named, and its address. */
  to: { name: string; addr: string; role: string | undefined };
  /** The traceroute command, as run inside FROM's namespace. */
  command: string[];
  hops: (TraceHop & { owner?: AddressOwner })[];
  /** traceroute's hop lines with the machines' names. */
  annotated: string[];
  /** "h1w1 → h1 → tor1 → spine1 → tor2 → h4 → h4w2". */
  path: string;
  /** The destination answered (the last hop is TO's address). */
  reached: boolean;
}

export async function labTraceroute(
  name: string,
  from: string,
  to: string,
  settings: LabSettings & { maxHops?: number; signal?: AbortSignal } = {},
): Promise<LabTrace> {
  const info = labInfo(name, settings);
  const book = addressBook(info.plan, info.workloads);
  const fromNs =
    info.plan.namespaces.find((n) => n.short === from)?.name ??
    info.workloads.find((w) => w.name === from)?.ns;
  const known = (): string =>
    [...info.plan.namespaces.map((n) => n.short), ...info.workloads.map((w) => w.name)].join(", ");
  if (fromNs === undefined) {
    throw new TwillError("NotFound", `no "${from}" in lab "${name}": one of ${known()}`);
  }
  let addr: string | undefined;
  if (/^[0-9a-fA-F.:]+$/.test(to) && (to.includes(".") || to.includes(":"))) {
    addr = to;
  } else {
    const w = info.workloads.find((x) => x.name === to);
    addr = w?.ipv4 ?? w?.ipv6;
    if (addr === undefined) {
      // A host, router or plain machine: its first address (a host's fabric address).
      const ns = info.plan.namespaces.find((n) => n.short === to);
      const first = [...(ns?.bridges ?? []), ...(ns?.interfaces ?? [])]
        .filter((i) => i.name !== "mgmt0")
        .flatMap((i) => i.addresses)[0];
      addr = first?.split("/")[0];
    }
    if (addr === undefined) {
      throw new TwillError(
        "NotFound",
        `no "${to}" with an address in lab "${name}": one of ${known()}`,
      );
    }
  }
  const command = [
    "traceroute",
    "-n",
    "-q",
    "1",
    "-w",
    "1",
    "-m",
    String(settings.maxHops ?? 16),
    ...(addr.includes(":") ? ["-6"] : []),
    addr,
  ];
  const r = await run("ip", ["netns", "exec", fromNs, ...command], {
    timeoutMs: 60_000,
    ...(settings.signal ? { signal: settings.signal } : {}),
  });
  if (r.code !== 0 && r.stdout.trim() === "") {
    throw new TwillError("Unavailable", `traceroute from ${from} failed: ${r.stderr.trim()}`);
  }
  const hops = parseTraceroute(r.stdout).map((h) => {
    const owner = h.addr === undefined ? undefined : book.get(h.addr);
    return owner === undefined ? h : { ...h, owner };
  });
  const owner = book.get(addr);
  return {
    from,
    to: { name: owner?.name ?? to, addr, role: owner ? ROLE_TEXT[owner.role] : undefined },
    command,
    hops,
    annotated: annotateTrace(hops, book),
    path: pathLine(from, hops, book),
    reached: hops.at(-1)?.addr === addr,
  };
}
