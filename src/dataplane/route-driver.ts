// Workload routes: `<addr>/32 dev <veth> scope link proto <P>` (and /128)
// in the main table, one per local workload address. The driver holds the
// desired routes and what it believes the kernel has, and writes only the
// difference, in one `ip -batch` per apply.
//
// Ownership is the route protocol number P (deviceRouteProtocol, twill's own
// 116 by default): the driver reads back only routes with P and removes only
// those, so it never touches routes anyone else made; a fresh process finds
// every leftover by P alone.
//
//   route-update/remove ──► desired: dst → dev
//   kernel (ip -j route show proto P) ──resync──► actual: dst → dev
//   apply: replace (dst desired, dev up, actual differs) · delete (actual, not desired)
//
// A route whose interface is missing or down cannot exist in the kernel:
// it is "pending", not failed, until the link monitor says the interface is
// up. Any failed op, and every link change, makes the next apply read the
// kernel back first; so does routeRefreshInterval (the agent's timer).
import { formatCIDR, parseCIDR } from "../api/ip.js";
import { TwillError } from "../util/errors.js";
import type { RunCommand } from "./run-command.js";
import { stderrSummary } from "./run-command.js";

export interface KernelRoute {
  /** Canonical CIDR: "10.65.0.5/32", "fd00::5/128". */
  dst: string;
  dev: string;
}

export type RouteOp = { op: "replace"; dst: string; dev: string } | { op: "delete"; dst: string };

export interface RouteOpFailure {
  op: RouteOp;
  error: string;
  /** The interface is missing or down: the route waits for it. */
  linkProblem: boolean;
}

/** The kernel's main routing table, as far as routes with one protocol number go. */
export interface RouteTable {
  list(family: 4 | 6, protocol: number, signal?: AbortSignal): Promise<KernelRoute[]>;
  /** Run every op (one batch, going on past failures); resolves with the ops that failed. */
  apply(ops: readonly RouteOp[], protocol: number, signal?: AbortSignal): Promise<RouteOpFailure[]>;
}

export type RouteState = "programmed" | "pending" | "failed";

export interface RouteApplyResult {
  /** Ops written. */
  changed: number;
  failed: { dst: string; dev: string; error: string }[];
  /** Desired routes whose interface is not up. */
  pending: string[];
}

export interface RouteDriverOptions {
  protocol: number;
  ipv6: boolean;
}

/** Canonical CIDR of a route destination as `ip -j route` prints it ("10.0.0.5" → "10.0.0.5/32"). */
export function canonicalDst(dst: string): string | undefined {
  const cidr = parseCIDR(dst, { allowBareIP: true });
  return cidr ? formatCIDR(cidr) : undefined;
}

export class RouteDriver {
  readonly #table: RouteTable;
  #protocol: number;
  #ipv6: boolean;
  readonly #desired = new Map<string, string>();
  readonly #actual = new Map<string, string>();
  readonly #failed = new Map<string, string>();
  #resyncNeeded = true;
  #dirty = true;

  constructor(table: RouteTable, options: RouteDriverOptions) {
    this.#table = table;
    this.#protocol = options.protocol;
    this.#ipv6 = options.ipv6;
  }

  setRoute(dst: string, dev: string): void {
    const key = canonicalDst(dst) ?? dst;
    if (this.#desired.get(key) === dev) return;
    this.#desired.set(key, dev);
    this.#dirty = true;
  }

  removeRoute(dst: string): void {
    const key = canonicalDst(dst) ?? dst;
    if (this.#desired.delete(key)) this.#dirty = true;
    this.#failed.delete(key);
  }

  /** A new protocol number or IPv6 switch: leave the old protocol's routes alone, re-read. */
  configure(options: RouteDriverOptions): void {
    if (options.protocol === this.#protocol && options.ipv6 === this.#ipv6) return;
    this.#protocol = options.protocol;
    this.#ipv6 = options.ipv6;
    this.requestResync();
  }

  /** An interface appeared, changed or went away: the kernel may have dropped or now accepts routes. */
  onLinkChange(name: string): void {
    for (const [dst, dev] of this.#actual) if (dev === name) this.#actual.delete(dst);
    this.requestResync();
  }

  requestResync(): void {
    this.#resyncNeeded = true;
    this.#dirty = true;
  }

  get dirty(): boolean {
    return this.#dirty;
  }

  #wanted(dst: string): string | undefined {
    if (!this.#ipv6 && dst.includes(":")) return undefined;
    return this.#desired.get(dst);
  }

  /** Converge the kernel; `isUp` says whether an interface exists and is up. */
  async apply(isUp: (name: string) => boolean, signal?: AbortSignal): Promise<RouteApplyResult> {
    if (this.#resyncNeeded) {
      const [v4, v6] = await Promise.all([
        this.#table.list(4, this.#protocol, signal),
        this.#table.list(6, this.#protocol, signal),
      ]);
      this.#actual.clear();
      for (const r of [...v4, ...v6]) this.#actual.set(r.dst, r.dev);
      this.#resyncNeeded = false;
    }
    const ops: RouteOp[] = [];
    const pending: string[] = [];
    for (const [dst, dev] of this.#desired) {
      if (this.#wanted(dst) === undefined) continue;
      if (this.#actual.get(dst) === dev) continue;
      if (isUp(dev)) ops.push({ op: "replace", dst, dev });
      else {
        pending.push(dst);
        // A route to the wrong interface is worse than none.
        if (this.#actual.has(dst)) ops.push({ op: "delete", dst });
      }
    }
    for (const dst of this.#actual.keys()) {
      if (this.#wanted(dst) === undefined) ops.push({ op: "delete", dst });
    }
    const failures = ops.length > 0 ? await this.#table.apply(ops, this.#protocol, signal) : [];
    const failedOps = new Set(failures.map((f) => f.op));
    this.#failed.clear();
    const failed: RouteApplyResult["failed"] = [];
    for (const op of ops) {
      if (failedOps.has(op)) continue;
      if (op.op === "replace") this.#actual.set(op.dst, op.dev);
      else this.#actual.delete(op.dst);
    }
    for (const f of failures) {
      if (f.op.op === "replace" && f.linkProblem) {
        pending.push(f.op.dst);
        continue;
      }
      const dev = f.op.op === "replace" ? f.op.dev : (this.#actual.get(f.op.dst) ?? "");
      this.#failed.set(f.op.dst, f.error);
      failed.push({ dst: f.op.dst, dev, error: f.error });
    }
    // After any failure the kernel is not what we think: read it back next time.
    if (failures.length > 0) this.#resyncNeeded = true;
    this.#dirty = failed.length > 0;
    return { changed: ops.length - failures.length, failed, pending: pending.sort() };
  }

  /** A desired route's state after the last apply. */
  state(dst: string): RouteState {
    // Called for every route at every apply: skip parsing what is already a key.
    const key = this.#desired.has(dst) ? dst : (canonicalDst(dst) ?? dst);
    const dev = this.#wanted(key);
    if (dev !== undefined && this.#actual.get(key) === dev) return "programmed";
    if (this.#failed.has(key)) return "failed";
    return "pending";
  }

  stats(): { routes: number; pending: number } {
    let routes = 0;
    let pending = 0;
    for (const [dst, dev] of this.#desired) {
      if (this.#wanted(dst) === undefined) continue;
      if (this.#actual.get(dst) === dev) routes++;
      else pending++;
    }
    return { routes, pending };
  }
}

// ---------------------------------------------------------------------------
// The real table: iproute2.

const LINK_PROBLEM = /Cannot find device|not up|No such device|Network is down/i;

/** The main table through `ip` (in the current network namespace). */
export function ipRouteTable(run: RunCommand): RouteTable {
  return {
    async list(family, protocol, signal) {
      const args = [
        `-${family}`,
        "-j",
        "route",
        "show",
        "table",
        "main",
        "proto",
        String(protocol),
      ];
      const r = await run("ip", args, signal ? { signal } : {});
      if (r.code !== 0) {
        throw new TwillError(
          "Unavailable",
          `ip ${args.join(" ")} failed: ${stderrSummary(r.stderr)}`,
        );
      }
      const text = r.stdout.trim();
      const rows = (text === "" ? [] : JSON.parse(text)) as {
        dst?: string;
        dev?: string;
        type?: string;
      }[];
      const out: KernelRoute[] = [];
      for (const row of rows) {
        if (row.dst === undefined || row.dev === undefined) continue;
        if (row.type !== undefined && row.type !== "unicast") continue;
        const dst =
          row.dst === "default" ? (family === 4 ? "0.0.0.0/0" : "::/0") : canonicalDst(row.dst);
        if (dst !== undefined) out.push({ dst, dev: row.dev });
      }
      return out;
    },
    async apply(ops, protocol, signal) {
      const lines = ops.map((o) =>
        o.op === "replace"
          ? `route replace ${o.dst} dev ${o.dev}${o.dst.includes(":") ? "" : " scope link"} proto ${protocol}`
          : `route del ${o.dst} proto ${protocol}`,
      );
      const r = await run("ip", ["-force", "-batch", "-"], {
        input: `${lines.join("\n")}\n`,
        ...(signal ? { signal } : {}),
      });
      if (r.code === 0) return [];
      // ip prints the error, then "Command failed -:<line>", for every failing line.
      const failures: RouteOpFailure[] = [];
      let message: string[] = [];
      for (const line of r.stderr.split("\n")) {
        const m = /^Command failed -:([0-9]+)$/.exec(line.trim());
        if (!m) {
          if (line.trim() !== "") message.push(line.trim());
          continue;
        }
        const op = ops[Number(m[1]) - 1];
        const error = message.join("; ") || "failed";
        message = [];
        if (!op) continue;
        // Deleting a route that is already gone is what we wanted.
        if (op.op === "delete" && /No such process|No such file/i.test(error)) continue;
        failures.push({ op, error, linkProblem: LINK_PROBLEM.test(error) });
      }
      if (failures.length === 0 && r.code !== 0 && !/Command failed/.test(r.stderr)) {
        throw new TwillError("Unavailable", `ip -batch failed: ${stderrSummary(r.stderr)}`);
      }
      return failures;
    },
  };
}

// ---------------------------------------------------------------------------
// The fake table: state in memory, behaving like the kernel where it matters.

export interface FakeRouteTable extends RouteTable {
  /** Interfaces, as the kernel has them (true = up). */
  readonly links: Map<string, boolean>;
  /** Routes with any protocol: dst → {dev, protocol}. */
  readonly routes: Map<string, { dev: string; protocol: number }>;
  /** Add or change an interface; down drops its routes, as the kernel does. */
  setLink(name: string, up: boolean): void;
  /** Remove an interface and, as the kernel does, its routes. */
  removeLink(name: string): void;
  /** The next `count` apply/list calls fail outright with `message`. */
  failNext(count: number, message?: string): void;
  /** Sorted "dst dev proto" lines, for goldens. */
  dump(): string[];
  /** Calls made: "list 4", "apply 3". */
  readonly calls: string[];
}

export function fakeRouteTable(): FakeRouteTable {
  const links = new Map<string, boolean>();
  const routes = new Map<string, { dev: string; protocol: number }>();
  const calls: string[] = [];
  let failures = 0;
  let failMessage = "injected failure";
  const maybeFail = () => {
    if (failures > 0) {
      failures--;
      throw new TwillError("Unavailable", failMessage);
    }
  };
  const dropRoutesOf = (name: string) => {
    for (const [dst, r] of routes) if (r.dev === name) routes.delete(dst);
  };
  return {
    links,
    routes,
    calls,
    setLink(name, up) {
      links.set(name, up);
      if (!up) dropRoutesOf(name);
    },
    removeLink(name) {
      links.delete(name);
      dropRoutesOf(name);
    },
    failNext(count, message = "injected failure") {
      failures = count;
      failMessage = message;
    },
    dump: () => [...routes].map(([dst, r]) => `${dst} dev ${r.dev} proto ${r.protocol}`).sort(),
    async list(family, protocol) {
      calls.push(`list ${family}`);
      maybeFail();
      const out: KernelRoute[] = [];
      for (const [dst, r] of routes) {
        if (r.protocol === protocol && dst.includes(":") === (family === 6))
          out.push({ dst, dev: r.dev });
      }
      return out;
    },
    async apply(ops, protocol) {
      calls.push(`apply ${ops.length}`);
      maybeFail();
      const failed: RouteOpFailure[] = [];
      for (const op of ops) {
        if (op.op === "replace") {
          const up = links.get(op.dev);
          if (up === undefined) {
            failed.push({ op, error: `Cannot find device "${op.dev}"`, linkProblem: true });
          } else if (!up) {
            failed.push({ op, error: "Error: Device for nexthop is not up.", linkProblem: true });
          } else routes.set(op.dst, { dev: op.dev, protocol });
        } else {
          const r = routes.get(op.dst);
          if (r && r.protocol === protocol) routes.delete(op.dst);
        }
      }
      return failed;
    },
  };
}
