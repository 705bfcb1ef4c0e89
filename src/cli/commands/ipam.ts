// `twill ipam show | check | release | gc`: IPAM usage, audit, manual release
// and garbage collection (src/ipam; docs/ipam.md has the algorithms).
//
// IPAM writes multi-key transactions, so it needs the datastore's raw
// key-value backend: the opened store must expose `backend` (a
// ResourceStore does).
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { parseIP } from "../../api/ip.js";
import type { Backend } from "../../datastore/backend.js";
import { ResourceStore } from "../../datastore/resource-store.js";
import { reportIsClean } from "../../ipam/ipam-audit.js";
import type { GcResult, IpamReport } from "../../ipam/ipam-audit.js";
import { Ipam } from "../../ipam/ipam.js";
import type { ReleaseItem, ReleaseResult, UsageReport } from "../../ipam/ipam.js";
import { TwillError } from "../../util/errors.js";
import { EXIT, UsageError } from "../cli-errors.js";
import type { CliStore } from "../cli-store.js";
import type { CommandContext } from "../context.js";
import { formatTable } from "../format-table.js";
import { STDIN_SOURCE } from "../read-inputs.js";

/** Default grace period of `twill ipam gc` (Calico's default leak grace period). */
export const DEFAULT_GC_GRACE = "15m";

async function openIpam(ctx: CommandContext): Promise<Ipam> {
  const store: CliStore & { backend?: Backend } = await ctx.store();
  if (store instanceof ResourceStore) return new Ipam(store);
  if (!store.backend) {
    throw new TwillError(
      "Internal",
      "this datastore connection does not expose its key-value backend, which IPAM needs for its transactions",
    );
  }
  return new Ipam(new ResourceStore(store.backend));
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a Go-style duration ("15m", "1h30m", "45s", "500ms", "0"). */
export function parseDuration(text: string): number {
  if (text === "0") return 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (!m) break;
    total += Number(m[1]) * (UNITS[m[2] as string] as number);
    at = part.lastIndex;
  }
  if (text === "" || at !== text.length) {
    throw new UsageError(
      `"${text}" is not a duration: use a number with a unit, e.g. 30s, 10m, 1h30m`,
      { command: "ipam gc" },
    );
  }
  return total;
}

/** "12m", "1h5m", "40s", "0s": for how long something has been so. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "ever";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? `${s % 60}s` : ""}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? `${m % 60}m` : ""}`;
  return `${Math.floor(h / 24)}d${h % 24 ? `${h % 24}h` : ""}`;
}

function percent(part: bigint, whole: bigint): string {
  if (whole === 0n) return "0%";
  return `${Number((part * 200n + whole) / (whole * 2n))}%`; // rounded
}

function amount(part: bigint, whole: bigint): string {
  return `${part} (${percent(part, whole)})`;
}

/** The `twill ipam show` table: pools, and with blocks their blocks under them. */
export function formatUsage(usage: UsageReport, showBlocks: boolean): string {
  const rows: string[][] = [];
  const blockRow = (b: UsageReport["blocks"][number], grouping = "Block"): string[] => {
    const total = BigInt(b.total);
    const inUse = BigInt(b.inUse);
    return [
      grouping,
      b.cidr,
      b.host ?? "(none)",
      String(total),
      amount(inUse, total),
      amount(total - inUse, total),
    ];
  };
  for (const p of usage.pools) {
    const inUse = BigInt(p.inUse);
    rows.push([
      p.disabled ? "IP Pool (disabled)" : "IP Pool",
      p.cidr,
      "",
      String(p.total),
      amount(inUse, p.total),
      amount(p.total - inUse, p.total),
    ]);
    if (showBlocks) {
      for (const b of usage.blocks) if (b.pool === p.name) rows.push(blockRow(b));
    }
  }
  if (showBlocks) {
    for (const b of usage.blocks) {
      if (b.pool === null) rows.push(blockRow(b, "Block (no pool)"));
    }
  }
  return formatTable(["Grouping", "CIDR", "Host", "IPs total", "IPs in use", "IPs free"], rows);
}

async function show(
  ctx: CommandContext,
  options: { showBlocks?: boolean; ip?: string },
): Promise<void> {
  if (options.ip !== undefined) {
    if (!parseIP(options.ip)) {
      throw new UsageError(`--ip: "${options.ip}" is not an IP address`, { command: "ipam show" });
    }
    const ipam = await openIpam(ctx);
    const info = await ipam.describeAddress(options.ip);
    const where: string[] = [];
    if (info.pool !== undefined) where.push(`pool "${info.pool}"`);
    if (info.block) {
      where.push(
        `block ${info.block.cidr} of ${info.block.host === null ? "no host" : `host "${info.block.host}"`}`,
      );
    }
    const a = info.allocation;
    if (!a) {
      const place = info.pool === undefined ? "it is in no IP pool" : where.join(", ");
      ctx.output.out(
        `${info.ip} is not allocated (${place})${info.reserved ? "; it is reserved by an IPReservation" : ""}\n`,
      );
      return;
    }
    const attrs = Object.keys(a.attributes)
      .sort()
      .map((k) => `${k}=${a.attributes[k]}`)
      .join(" ");
    ctx.output.out(
      [
        `${info.ip} is allocated`,
        `  pool:        ${info.pool ?? "(none: the pool is gone)"}`,
        `  block:       ${a.block} (${a.host === null ? "no host" : `host ${a.host}`})`,
        `  handle:      ${a.handle}`,
        `  allocated:   ${a.allocatedAt}`,
        `  sequence:    ${a.sequence}`,
        `  attributes:  ${attrs}`,
        ...(info.reserved ? ["  note:        the address is reserved by an IPReservation"] : []),
        "",
      ].join("\n"),
    );
    return;
  }
  const ipam = await openIpam(ctx);
  const usage = await ipam.usage();
  if (usage.pools.length === 0 && usage.blocks.length === 0) {
    ctx.output.err("No IP pools found.\n");
    return;
  }
  ctx.output.out(formatUsage(usage, options.showBlocks === true));
}

/** The human summary of a check report. */
export function formatReport(report: IpamReport): string {
  const s = report.summary;
  const lines = [
    `Checked ${s.pools} pool(s), ${s.blocks} block(s), ${s.allocations} allocation(s) (${s.unmanaged} not made for a workload), ${s.workloadEndpoints} workload endpoint(s), ${s.nodes} node(s).`,
  ];
  const section = (title: string, headers: string[], rows: string[][]) => {
    lines.push(`${title}: ${rows.length}`);
    if (rows.length === 0) return;
    lines.push(
      ...formatTable(headers, rows)
        .trimEnd()
        .split("\n")
        .map((l) => `  ${l}`),
    );
  };
  section(
    "Allocations with no endpoint",
    ["IP", "Handle", "Endpoint", "Host", "Allocated"],
    report.leakedAllocations.map((l) => [
      l.ip,
      l.handle,
      `${l.attributes["namespace"] ?? "default"}/${l.attributes["workloadEndpoint"] ?? ""}`,
      l.host ?? "(none)",
      l.allocatedAt,
    ]),
  );
  section(
    "Endpoints with no allocation",
    ["Endpoint", "IP", "Reason"],
    report.endpointsWithoutAllocation.map((e) => [`${e.namespace}/${e.name}`, e.ip, e.reason]),
  );
  section(
    "Blocks with no host",
    ["Block", "Host", "Allocations", "Reason"],
    report.blocksWithoutHost.map((b) => [
      b.cidr,
      b.host ?? "(none)",
      String(b.allocations),
      b.reason,
    ]),
  );
  lines.push(`Inconsistent records: ${report.problems.length}`);
  for (const p of report.problems) lines.push(`  ${p.key}: ${p.message}`);
  return `${lines.join("\n")}\n`;
}

async function check(ctx: CommandContext, options: { output?: string }): Promise<void> {
  const ipam = await openIpam(ctx);
  const report = await ipam.check();
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (options.output === "-") {
    ctx.output.out(json);
  } else {
    ctx.output.out(formatReport(report));
    if (options.output !== undefined) {
      try {
        await writeFile(options.output, json);
      } catch (err) {
        throw new TwillError("Invalid", `cannot write the report to "${options.output}"`, {
          cause: err,
        });
      }
      ctx.output.out(`Report written to ${options.output}\n`);
    }
  }
  if (!reportIsClean(report)) ctx.fail(EXIT.failed);
}

function reportItems(text: string, source: string): ReleaseItem[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TwillError(
      "Invalid",
      `${source}: not JSON (write one with 'twill ipam check -o FILE')`,
      {
        cause: err,
      },
    );
  }
  const r = raw as Partial<IpamReport> | null;
  if (
    typeof r !== "object" ||
    r === null ||
    r.version !== 1 ||
    !Array.isArray(r.leakedAllocations)
  ) {
    throw new TwillError(
      "Invalid",
      `${source}: not a 'twill ipam check' report (version 1 with leakedAllocations)`,
    );
  }
  return r.leakedAllocations.map((l, i) => {
    if (
      typeof l !== "object" ||
      l === null ||
      typeof l.ip !== "string" ||
      typeof l.handle !== "string" ||
      typeof l.sequence !== "number"
    ) {
      throw new TwillError(
        "Invalid",
        `${source}: leakedAllocations[${i}] needs ip, handle and sequence`,
      );
    }
    return { ip: l.ip, handle: l.handle, sequence: l.sequence };
  });
}

function printRelease(ctx: CommandContext, result: ReleaseResult): void {
  for (const r of result.released) ctx.output.out(`released ${r.ip} (handle "${r.handle}")\n`);
  for (const ip of result.notAllocated)
    ctx.output.err(`${ip} was not allocated: nothing to release\n`);
  for (const m of result.mismatched) ctx.output.err(`${m.ip} left alone: ${m.reason}\n`);
  if (result.mismatched.length > 0) ctx.fail(EXIT.conflict);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function release(
  ctx: CommandContext,
  options: { ip: string[]; handle?: string; fromReport?: string },
): Promise<void> {
  const command = "ipam release";
  const { ip: ips, handle, fromReport } = options;
  if (fromReport !== undefined) {
    if (ips.length > 0 || handle !== undefined) {
      throw new UsageError("--from-report cannot be combined with --ip or --handle", { command });
    }
    const source = fromReport === "-" ? STDIN_SOURCE : fromReport;
    let text: string;
    try {
      text =
        fromReport === "-" ? await ctx.files.readStdin() : await ctx.files.readFile(fromReport);
    } catch (err) {
      throw new TwillError("Invalid", `cannot read ${source}`, { cause: err });
    }
    const items = reportItems(text, source);
    if (items.length === 0) {
      ctx.output.err(`${source} lists no leaked allocations: nothing to release\n`);
      return;
    }
    const ipam = await openIpam(ctx);
    printRelease(ctx, await ipam.releaseAllocations(items));
    return;
  }
  for (const ip of ips) {
    if (!parseIP(ip)) throw new UsageError(`--ip: "${ip}" is not an IP address`, { command });
  }
  if (ips.length > 0) {
    const ipam = await openIpam(ctx);
    printRelease(ctx, await ipam.releaseIPs(ips, handle === undefined ? {} : { handle }));
    return;
  }
  if (handle !== undefined) {
    const ipam = await openIpam(ctx);
    const result = await ipam.releaseByHandle(handle);
    if (result.released.length === 0) {
      ctx.output.err(`handle "${handle}" holds no addresses: nothing to release\n`);
    }
    printRelease(ctx, result);
    return;
  }
  throw new UsageError("give --ip ADDR, --handle H or --from-report FILE", { command });
}

/** The human account of a gc run. */
export function formatGc(result: GcResult): string {
  const lines: string[] = [];
  const grace = formatDuration(result.graceMs);
  lines.push(`Allocations with no endpoint: ${result.leaks.length} (grace period ${grace})`);
  if (result.leaks.length > 0) {
    const rows = result.leaks.map((l) => [
      l.ip,
      l.handle,
      formatDuration(l.leakedForMs),
      l.due
        ? result.dryRun
          ? "would release"
          : "release"
        : `wait ${formatDuration(Math.max(result.graceMs - Math.min(l.leakedForMs, l.allocatedForMs), 0))}`,
    ]);
    lines.push(
      ...formatTable(["IP", "Handle", "Seen leaked for", "Action"], rows)
        .trimEnd()
        .split("\n")
        .map((l) => `  ${l}`),
    );
  }
  lines.push(`Blocks to return to their pool: ${result.blocks.length}`);
  if (result.blocks.length > 0) {
    const rows = result.blocks.map((b) => [
      b.cidr,
      b.host,
      b.reason === "hostGone" ? "host is gone" : "empty, host has another",
      formatDuration(b.idleForMs),
      b.outcome ??
        (b.due
          ? result.dryRun
            ? "would release"
            : "release"
          : `wait ${formatDuration(result.graceMs - b.idleForMs)}`),
    ]);
    lines.push(
      ...formatTable(["Block", "Host", "Why", "Idle for", "Action"], rows)
        .trimEnd()
        .split("\n")
        .map((l) => `  ${l}`),
    );
  }
  if (result.observationsRecorded > 0) {
    lines.push(`Recorded ${result.observationsRecorded} new leak observation(s).`);
  }
  const dueLeaks = result.leaks.filter((l) => l.due).length;
  const dueBlocks = result.blocks.filter((b) => b.due).length;
  if (result.dryRun) {
    lines.push(
      dueLeaks + dueBlocks > 0
        ? `Dry run: nothing was released. Run with --yes to release ${dueLeaks} address(es) and ${dueBlocks} block(s).`
        : "Dry run: nothing is due for release.",
    );
  } else {
    for (const r of result.released) lines.push(`released ${r.ip} (handle "${r.handle}")`);
    for (const s of result.skipped) lines.push(`skipped ${s.ip}: ${s.reason}`);
    const blocksDone = result.blocks.filter(
      (b) => b.outcome === "deleted" || b.outcome === "unaffined",
    ).length;
    lines.push(`Released ${result.released.length} address(es) and ${blocksDone} block(s).`);
  }
  return `${lines.join("\n")}\n`;
}

async function gc(ctx: CommandContext, options: { grace: string; yes?: boolean }): Promise<void> {
  const graceMs = parseDuration(options.grace);
  const ipam = await openIpam(ctx);
  const result = await ipam.gc({ graceMs, dryRun: options.yes !== true });
  ctx.output.out(formatGc(result));
}

export function registerIpam(program: Command, ctx: CommandContext): void {
  const ipam = program
    .command("ipam")
    .description("IP address management: usage, audit, release and garbage collection")
    .addHelpText(
      "after",
      `
Examples:
  twill ipam show --show-blocks
  twill ipam show --ip 10.65.0.7
  twill ipam check -o report.json
  twill ipam release --from-report report.json
  twill ipam gc --grace 10m --yes`,
    );

  ipam
    .command("show")
    .description("Addresses in use per pool (and per block with its host), or one address")
    .option("--show-blocks", "list every block under its pool, with the host that holds it")
    .option("--ip <addr>", "show who holds one address")
    .action((options: { showBlocks?: boolean; ip?: string }) => show(ctx, options));

  ipam
    .command("check")
    .description(
      "Audit IPAM: allocations with no endpoint, endpoints with no allocation, blocks with no host",
    )
    .option("-o, --output <file>", "also write the full report as JSON to FILE (- for stdout only)")
    .addHelpText(
      "after",
      `
Exits 0 when everything is consistent, 1 when the report lists anything.
Release what it found with 'twill ipam release --from-report FILE'.`,
    )
    .action((options: { output?: string }) => check(ctx, options));

  ipam
    .command("release")
    .description("Release addresses by address, by handle, or those a check report found leaked")
    .option("--ip <addr>", "an address to release; repeatable", collect, [] as string[])
    .option(
      "--handle <handle>",
      "release everything held under this handle (with --ip: only if held under it)",
    )
    .option(
      "--from-report <file>",
      "release the leaked allocations of a 'twill ipam check -o' report (- for stdin)",
    )
    .addHelpText(
      "after",
      `
An address is released only if it is still held as the report (handle and
sequence) or --handle says; one given to someone else since is left alone
(exit 5). Releasing a free address is harmless.`,
    )
    .action((options: { ip: string[]; handle?: string; fromReport?: string }) =>
      release(ctx, options),
    );

  ipam
    .command("gc")
    .description(
      "Garbage-collect allocations whose endpoint is gone, and blocks of hosts that are gone (dry run unless --yes)",
    )
    .option(
      "--grace <duration>",
      "how long an endpoint must have been gone, e.g. 30s, 10m, 1h",
      DEFAULT_GC_GRACE,
    )
    .option("--yes", "release for real (default: only report)")
    .addHelpText(
      "after",
      `
A leak is released once two runs at least the grace period apart have seen
it (the first run records it under the datastore's ipam/leaks/, even in a dry
run). --grace 0 releases on the first run.`,
    )
    .action((options: { grace: string; yes?: boolean }) => gc(ctx, options));
}
