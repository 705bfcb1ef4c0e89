// A client for BIRD 2's control socket (the protocol `birdc` speaks), and
// parsers for the replies twill reads: `show status`, `show protocols all`,
// `show route [...]` and `show route [...] count`.
//
// The protocol: one command per line; the reply is a run of lines, each
// "DDDD-text" (more lines follow) or "DDDD text" (the last line), where DDDD
// is a 4-digit code (0xxx done, 1xxx table entry, 2xxx table heading, 8xxx
// run-time error, 9xxx parse error). A line starting with a space continues
// the previous code. On connect BIRD greets with "0001 BIRD <version> ready.".
//
//   client ──"show protocols all\n"──► bird
//          ◄── 2002-Name Proto Table State Since Info
//              1002-mesh_10_0_0_2 BGP --- up 2026-11-26 05:23:12  Established
//              1006-  BGP state:          Established
//                   Neighbor address: 10.0.0.2        (continuation of 1006)
//              0000
//
// One connection runs one command at a time: requests queue. The parsers
// are pure functions of the reply lines, tested on captured replies.
import { createConnection } from "node:net";
import type { Socket } from "node:net";
import { TwillError } from "../util/errors.js";

/** One logical reply line: its code and text (without the code and separator). */
export interface ReplyLine {
  code: number;
  text: string;
}

/** A reply that ended in an 8xxx or 9xxx code. */
export class BirdCommandError extends TwillError {
  readonly birdCode: number;
  readonly command: string;

  constructor(command: string, birdCode: number, text: string) {
    super(birdCode >= 9000 ? "Invalid" : "Internal", `BIRD refused "${command}": ${text}`);
    this.name = "BirdCommandError";
    this.birdCode = birdCode;
    this.command = command;
  }
}

export interface BirdControlOptions {
  /** How long one command (or the connect and greeting) may take; default 5000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 5_000;

/**
 * Splits reply text into logical lines. `done` is true once a final line
 * ("DDDD text") was seen; `rest` is an incomplete last line to keep.
 */
export function splitReply(
  buffer: string,
  lastCode = 0,
): { lines: ReplyLine[]; done: boolean; rest: string; lastCode: number } {
  const lines: ReplyLine[] = [];
  let code = lastCode;
  let at = 0;
  for (;;) {
    const nl = buffer.indexOf("\n", at);
    if (nl < 0) break;
    const raw = buffer.slice(at, nl);
    at = nl + 1;
    const m = /^(\d{4})([ -])/.exec(raw);
    if (m) {
      code = Number(m[1]);
      lines.push({ code, text: raw.slice(5) });
      if (m[2] === " ") return { lines, done: true, rest: buffer.slice(at), lastCode: code };
    } else if (raw.startsWith(" ")) {
      lines.push({ code, text: raw.slice(1) });
    } else if (raw.startsWith("+")) {
      // A spontaneous printout (only with `echo`, which we never ask for).
    } else if (raw !== "") {
      lines.push({ code, text: raw });
    }
  }
  return { lines, done: false, rest: buffer.slice(at), lastCode: code };
}

/** A connection to one BIRD's control socket. */
export class BirdControl {
  readonly socketPath: string;
  readonly version: string;
  readonly #socket: Socket;
  readonly #timeoutMs: number;
  #buffer = "";
  #lastCode = 0;
  #pending: ((err: Error | undefined) => void) | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed: Error | undefined;
  #collected: ReplyLine[] = [];

  private constructor(socketPath: string, socket: Socket, version: string, timeoutMs: number) {
    this.socketPath = socketPath;
    this.#socket = socket;
    this.version = version;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connect and read the greeting. TwillError "Unavailable" when nothing
   * listens there (no BIRD, or a stale socket), "Timeout" when BIRD does not
   * answer in time.
   */
  static async connect(socketPath: string, options: BirdControlOptions = {}): Promise<BirdControl> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const socket = createConnection(socketPath);
    socket.setEncoding("utf8");
    let buffer = "";
    try {
      const greeting = await new Promise<ReplyLine[]>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new TwillError(
                "Timeout",
                `BIRD at ${socketPath} did not greet within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
        const onAbort = () => reject(new TwillError("Aborted", "BIRD connect aborted"));
        options.signal?.addEventListener("abort", onAbort, { once: true });
        const lines: ReplyLine[] = [];
        const finish = (err?: Error) => {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
          socket.off("data", onData);
          socket.off("error", onError);
          socket.off("close", onClose);
          if (err) reject(err);
          else resolve(lines);
        };
        const onData = (chunk: string) => {
          buffer += chunk;
          const r = splitReply(buffer);
          if (r.done) {
            lines.push(...r.lines);
            buffer = r.rest;
            finish();
          }
        };
        const onError = (err: NodeJS.ErrnoException) =>
          finish(
            new TwillError(
              "Unavailable",
              err.code === "ENOENT" || err.code === "ECONNREFUSED"
                ? `BIRD is not running: nothing answers on ${socketPath} (${err.code})`
                : `cannot reach BIRD at ${socketPath}: ${err.message}`,
              { cause: err },
            ),
          );
        const onClose = () =>
          finish(new TwillError("Unavailable", `BIRD at ${socketPath} closed the connection`));
        socket.on("data", onData);
        socket.on("error", onError);
        socket.on("close", onClose);
      });
      const hello = greeting[greeting.length - 1];
      if (!hello || hello.code !== 1) {
        throw new TwillError(
          "Unavailable",
          `BIRD at ${socketPath} greeted with "${hello?.text ?? ""}" (code ${hello?.code ?? "none"})`,
        );
      }
      const version = /^BIRD (\S+)/.exec(hello.text)?.[1] ?? "unknown";
      const control = new BirdControl(socketPath, socket, version, timeoutMs);
      control.#buffer = buffer;
      control.#listen();
      return control;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  #listen(): void {
    this.#socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      this.#drain();
    });
    const gone = (err?: Error) => {
      this.#closed ??=
        err ?? new TwillError("Unavailable", `BIRD at ${this.socketPath} closed the connection`);
      this.#pending?.(this.#closed);
    };
    this.#socket.on("error", (err) =>
      gone(new TwillError("Unavailable", `BIRD at ${this.socketPath}: ${err.message}`)),
    );
    this.#socket.on("close", () => gone());
  }

  #drain(): void {
    if (!this.#pending) return;
    const r = splitReply(this.#buffer, this.#lastCode);
    this.#collected.push(...r.lines);
    this.#buffer = r.rest;
    this.#lastCode = r.lastCode;
    if (r.done) this.#pending(undefined);
  }

  /**
   * Run one command; resolves with every reply line. A reply ending in an
   * 8xxx/9xxx code rejects with BirdCommandError.
   */
  request(command: string): Promise<ReplyLine[]> {
    if (/[\r\n]/.test(command)) {
      return Promise.reject(new TwillError("Invalid", "a BIRD command is one line"));
    }
    const run = () => this.#run(command);
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  #run(command: string): Promise<ReplyLine[]> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise<ReplyLine[]>((resolve, reject) => {
      this.#collected = [];
      this.#lastCode = 0;
      const timer = setTimeout(() => {
        const err = new TwillError(
          "Timeout",
          `BIRD at ${this.socketPath} did not answer "${command}" within ${this.#timeoutMs} ms`,
        );
        this.#closed ??= err;
        this.#socket.destroy();
        finish(err);
      }, this.#timeoutMs);
      const finish = (err: Error | undefined) => {
        clearTimeout(timer);
        this.#pending = undefined;
        if (err) return reject(err);
        const lines = this.#collected;
        this.#collected = [];
        const last = lines[lines.length - 1];
        if (last && last.code >= 8000) {
          reject(new BirdCommandError(command, last.code, last.text.trim()));
        } else {
          resolve(lines);
        }
      };
      this.#pending = finish;
      this.#socket.write(`${command}\n`);
      this.#drain();
    });
  }

  close(): void {
    this.#closed ??= new TwillError("Unavailable", "BIRD control connection closed");
    this.#socket.destroy();
  }

  // --- The commands twill uses.

  async showStatus(): Promise<BirdStatus> {
    return parseStatus(await this.request("show status"));
  }

  /** Every protocol, or the one named. */
  async showProtocols(name?: string): Promise<BirdProtocol[]> {
    if (name !== undefined) checkSymbol(name);
    return parseProtocols(
      await this.request(name === undefined ? "show protocols all" : `show protocols all ${name}`),
    );
  }

  /** Routes in BIRD's tables: all, those a protocol imported, or those exported to a protocol. */
  async showRoutes(filter: RouteFilter = {}): Promise<BirdRoute[]> {
    return parseRoutes(await this.request(routeCommand(filter, false)));
  }

  async countRoutes(filter: RouteFilter = {}): Promise<number> {
    return parseRouteCount(await this.request(routeCommand(filter, true)));
  }

  /** Reload the configuration file BIRD was started with. */
  async configure(): Promise<string> {
    const lines = await this.request("configure");
    return lines.map((l) => l.text.trim()).join("; ");
  }

  /**
   * Re-run every protocol's filters over what it holds ("reload all"): routes
   * are exported and imported again through the current configuration.
   */
  async reloadAll(): Promise<string> {
    const lines = await this.request("reload all");
    return lines.map((l) => l.text.trim()).join("; ");
  }

  /** Shut BIRD down ("Shutdown ordered"); the socket closes as it goes. */
  async down(): Promise<void> {
    try {
      await this.request("down");
    } catch (err) {
      // BIRD may close the socket before or instead of answering.
      if (!(err instanceof TwillError && err.code === "Unavailable")) throw err;
    }
  }
}

/** Connect, run one command, close. */
export async function birdRequest(
  socketPath: string,
  fn: (c: BirdControl) => Promise<unknown>,
  options: BirdControlOptions = {},
): Promise<unknown> {
  const c = await BirdControl.connect(socketPath, options);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

export interface RouteFilter {
  /** Routes this protocol imported (learned). */
  protocol?: string;
  /** Routes exported (announced) to this protocol. */
  export?: string;
  /** One table (master4, master6); default every table. */
  table?: string;
  /** With every attribute (`show route all`). */
  all?: boolean;
}

function checkSymbol(name: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new TwillError("Invalid", `"${name}" is not a BIRD protocol or table name`);
  }
}

function routeCommand(f: RouteFilter, count: boolean): string {
  const parts = ["show route"];
  if (f.table !== undefined) {
    checkSymbol(f.table);
    parts.push(`table ${f.table}`);
  } else {
    parts.push("table all");
  }
  if (f.protocol !== undefined) {
    checkSymbol(f.protocol);
    parts.push(`protocol ${f.protocol}`);
  }
  if (f.export !== undefined) {
    checkSymbol(f.export);
    parts.push(`export ${f.export}`);
  }
  if (f.all && !count) parts.push("all");
  if (count) parts.push("count");
  return parts.join(" ");
}

// ---------------------------------------------------------------------------
// Parsers (pure).

export interface BirdStatus {
  version: string;
  routerId: string;
  hostname?: string;
  serverTime?: string;
  lastReboot?: string;
  lastReconfiguration?: string;
  /** "Daemon is up and running", "Reconfiguration in progress", "Graceful restart recovery in progress", … */
  message: string;
}

export function parseStatus(lines: readonly ReplyLine[]): BirdStatus {
  const status: BirdStatus = { version: "", routerId: "", message: "" };
  for (const { code, text } of lines) {
    const t = text.trim();
    let m: RegExpExecArray | null;
    if (code === 1000) status.version = t.replace(/^BIRD\s+/, "");
    else if ((m = /^Router ID is (\S+)/.exec(t))) status.routerId = m[1] ?? "";
    else if ((m = /^Hostname is (.*)$/.exec(t))) status.hostname = m[1] ?? "";
    else if ((m = /^Current server time is (.*)$/.exec(t))) status.serverTime = m[1] ?? "";
    else if ((m = /^Last reboot on (.*)$/.exec(t))) status.lastReboot = m[1] ?? "";
    else if ((m = /^Last reconfiguration on (.*)$/.exec(t))) {
      status.lastReconfiguration = m[1] ?? "";
    } else if (code === 13 || (code < 1000 && t !== "")) status.message = t;
  }
  return status;
}

export interface ChannelStats {
  /** "ipv4", "ipv6". */
  name: string;
  state: string;
  table: string;
  imported: number;
  exported: number;
  preferred: number;
  filtered: number;
}

export interface BgpDetails {
  /** Idle, Connect, Active, OpenSent, OpenConfirm, Established, Close, Down. */
  state: string;
  neighborAddress?: string;
  /** The peer's port, when not 179. */
  neighborPort?: number;
  neighborAs?: number;
  localAs?: number;
  neighborId?: string;
  sourceAddress?: string;
  /** "internal multihop AS4", "external AS4", … */
  session?: string;
  lastError?: string;
}

export interface BirdProtocol {
  name: string;
  /** BGP, Kernel, Static, Direct, Device, … */
  proto: string;
  table: string;
  /** up, start, down, flush, … */
  state: string;
  since: string;
  /** For BGP: Established, Active, Connect, …, and any error. */
  info: string;
  /** The protocol's `description`, when the configuration gives one. */
  description?: string;
  bgp?: BgpDetails;
  channels: ChannelStats[];
  /** Sums over the channels. */
  routes: { imported: number; exported: number; preferred: number; filtered: number };
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const TIME = /^\d{1,2}:\d{2}/;

function parseSummary(text: string): Omit<BirdProtocol, "channels" | "routes"> {
  const t = text.trim().split(/\s+/);
  const [name = "", proto = "", table = "", state = ""] = t;
  let i = 4;
  let since = t[i] ?? "";
  i++;
  if (DATE.test(since) && TIME.test(t[i] ?? "")) {
    since = `${since} ${t[i]}`;
    i++;
  }
  return { name, proto, table, state, since, info: t.slice(i).join(" ") };
}

function count(text: string, word: string): number {
  const m = new RegExp(`(\\d+) ${word}`).exec(text);
  return m ? Number(m[1]) : 0;
}

/** `show protocols all` (or `show protocols`: then without details). */
export function parseProtocols(lines: readonly ReplyLine[]): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  let current: BirdProtocol | undefined;
  let channel: ChannelStats | undefined;
  for (const { code, text } of lines) {
    if (code === 1002) {
      current = {
        ...parseSummary(text),
        channels: [],
        routes: { imported: 0, exported: 0, preferred: 0, filtered: 0 },
      };
      channel = undefined;
      out.push(current);
      continue;
    }
    if (code !== 1006 || !current) continue;
    const t = text.trim();
    if (t === "") continue;
    let m: RegExpExecArray | null;
    if ((m = /^Channel (\S+)$/.exec(t))) {
      channel = {
        name: m[1] ?? "",
        state: "",
        table: "",
        imported: 0,
        exported: 0,
        preferred: 0,
        filtered: 0,
      };
      current.channels.push(channel);
      continue;
    }
    const kv = /^([A-Za-z0-9 ]+?):\s*(.*)$/.exec(t);
    if (!kv) continue;
    const key = kv[1] ?? "";
    const value = (kv[2] ?? "").trim();
    if (channel) {
      if (key === "State") channel.state = value;
      else if (key === "Table") channel.table = value;
      else if (key === "Routes") {
        channel.imported = count(value, "imported");
        channel.exported = count(value, "exported");
        channel.preferred = count(value, "preferred");
        channel.filtered = count(value, "filtered");
      }
      continue;
    }
    if (key === "Description") {
      current.description = value;
      continue;
    }
    if (key === "BGP state") {
      current.bgp = { state: value };
      continue;
    }
    const bgp = current.bgp;
    if (!bgp) continue;
    if (key === "Neighbor address") {
      // "10.0.0.2", "10.0.0.2%eth0", or with a port: "10.0.0.2 port 1790"? BIRD prints the address only.
      bgp.neighborAddress = value.split(/\s+/)[0] ?? value;
    } else if (key === "Neighbor port") bgp.neighborPort = Number(value);
    else if (key === "Neighbor AS") bgp.neighborAs = Number(value);
    else if (key === "Local AS") bgp.localAs = Number(value);
    else if (key === "Neighbor ID") bgp.neighborId = value;
    else if (key === "Source address") bgp.sourceAddress = value;
    else if (key === "Session") bgp.session = value;
    else if (key === "Last error") bgp.lastError = value;
  }
  for (const p of out) {
    for (const c of p.channels) {
      p.routes.imported += c.imported;
      p.routes.exported += c.exported;
      p.routes.preferred += c.preferred;
      p.routes.filtered += c.filtered;
    }
  }
  return out;
}

export interface BirdRoute {
  /** "10.65.1.0/26" */
  prefix: string;
  table: string;
  /** unicast, unreachable, blackhole, prohibit. */
  type: string;
  /** The protocol the route came from. */
  protocol: string;
  since: string;
  /** The route BIRD chose for the prefix ("*"). */
  primary: boolean;
  preference: string;
  /** "i" (IGP), "e", "?", or an AS path summary "AS65001i". */
  origin?: string;
  /** Next hops: several for an ECMP route. */
  nexthops: { via?: string; dev?: string; weight?: number }[];
  /** With `all`: the route's attributes ("BGP.as_path" → "65001"). */
  attributes: Record<string, string>;
}

const ROUTE =
  /^(\S*)\s+([a-z]+)\s+\[([^\s\]]+)\s*([^\]]*)\]\s*(\*?)\s*\(([^)]*)\)\s*(?:\[([^\]]*)\])?/;

/** `show route [...] [all]`. */
export function parseRoutes(lines: readonly ReplyLine[]): BirdRoute[] {
  const out: BirdRoute[] = [];
  let table = "";
  let prefix = "";
  let route: BirdRoute | undefined;
  for (const { code, text } of lines) {
    if (code === 1007) {
      const tm = /^Table (\S+):$/.exec(text.trim());
      if (tm) {
        table = tm[1] ?? "";
        route = undefined;
        continue;
      }
      if (/^\s*(via|dev)\s/.test(text) || /^\t/.test(text)) {
        if (!route) continue;
        const t = text.trim();
        const via = /^via (\S+)(?: on (\S+))?(?:.*weight (\d+))?/.exec(t);
        const dev = /^dev (\S+)/.exec(t);
        if (via) {
          const hop: BirdRoute["nexthops"][number] = { via: via[1] ?? "" };
          if (via[2] !== undefined) hop.dev = via[2];
          if (via[3] !== undefined) hop.weight = Number(via[3]);
          route.nexthops.push(hop);
        } else if (dev) route.nexthops.push({ dev: dev[1] ?? "" });
        continue;
      }
      const m = ROUTE.exec(text);
      if (!m) continue;
      if (m[1]) prefix = m[1];
      route = {
        prefix,
        table,
        type: m[2] ?? "",
        protocol: m[3] ?? "",
        since: (m[4] ?? "").trim(),
        primary: m[5] === "*",
        preference: m[6] ?? "",
        nexthops: [],
        attributes: {},
      };
      if (m[7] !== undefined) route.origin = m[7];
      out.push(route);
      continue;
    }
    if ((code === 1008 || code === 1012) && route) {
      const kv = /^\s*([A-Za-z0-9_.]+):\s?(.*)$/.exec(text);
      if (kv) route.attributes[kv[1] ?? ""] = (kv[2] ?? "").trim();
    }
  }
  return out;
}

/** `show route [...] count`: the routes that matched, summed over the tables. */
export function parseRouteCount(lines: readonly ReplyLine[]): number {
  let total: number | undefined;
  let sum = 0;
  for (const { text } of lines) {
    const t = /^Total: (\d+) of/.exec(text.trim());
    if (t) total = Number(t[1]);
    const m = /^(\d+) of \d+ routes/.exec(text.trim());
    if (m) sum += Number(m[1]);
  }
  return total ?? sum;
}
