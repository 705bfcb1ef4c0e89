// `twill lab`: a whole data center on one machine, in network namespaces
// (src/lab/, docs/lab.md). Subcommands: up, status, exec, apply,
// add-workload, check, traceroute, down. The lab module is loaded on demand: `twill --help`
// and every other command never pay for it.
import { spawn } from "node:child_process";
import { Option } from "commander";
import type { Command } from "commander";
import { TwillError } from "../../util/errors.js";
import { EXIT, UsageError } from "../cli-errors.js";
import type { ExitCode } from "../cli-errors.js";
import type { CommandContext } from "../context.js";
import { formatTable } from "../format-table.js";
import type { LabInfo, LabStatus } from "../../lab/lab.js";
import type { LabOptions, LabTopology } from "../../lab/topology.js";

export interface LabCommandDeps {
  /** Runs a command with the terminal's stdin, stdout and stderr; resolves to its exit code. */
  execInherit(argv: readonly string[], env: Record<string, string | undefined>): Promise<number>;
  /** Whether stderr is a terminal (progress display). */
  isTTY(): boolean;
  /** Whether results on stdout may carry ANSI colours (default: stdout is a terminal and NO_COLOR is unset). */
  color?(): boolean;
  /** Where labs keep their state (tests use a temporary dir). */
  stateRoot?: string;
}

const defaultDeps: LabCommandDeps = {
  execInherit: (argv, env) =>
    new Promise((resolve, reject) => {
      const [cmd, ...args] = argv;
      if (cmd === undefined) {
        resolve(0);
        return;
      }
      const child = spawn(cmd, args, { stdio: "inherit", env });
      child.on("error", reject);
      child.on("exit", (code, sig) => resolve(code ?? (sig !== null ? 128 : 1)));
    }),
  isTTY: () => process.stderr.isTTY === true,
  color: () => process.stdout.isTTY === true && (process.env["NO_COLOR"] ?? "") === "",
};

const lab = () => import("../../lab/lab.js");

function wholeNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new UsageError(`${flag}: "${text}" is not a whole number`, { command: "lab" });
  }
  return n;
}

function parseLabels(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  const labels: Record<string, string> = {};
  for (const part of text.split(",").filter((p) => p.trim() !== "")) {
    const eq = part.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(`--labels: "${part}" is not key=value`, { command: "lab add-workload" });
    }
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}

const NAME_HELP = 'the lab\'s name (default: the only lab there is, else "lab")';

export function registerLab(
  program: Command,
  ctx: CommandContext,
  deps: LabCommandDeps = defaultDeps,
): void {
  const settings = deps.stateRoot !== undefined ? { stateRoot: deps.stateRoot } : {};
  const out = (s: string): void => ctx.output.out(s);
  const labName = async (given: string | undefined): Promise<string> =>
    (await lab()).resolveLabName(given, settings);

  const cmd = program
    .command("lab")
    .description(
      "A whole data center on one machine, in network namespaces: hosts, racks, routers, workloads",
    )
    .addHelpText(
      "after",
      `
The lab is a closed world: nothing in it is linked to this machine's own
network namespace and no route leads out of it. Every namespace is named
twl-<lab>-<name>; 'twill lab down' finds them by that prefix even after a
crash. State (logs, etcd data, BIRD and FRR files): /var/run/twill/lab/<lab>/.
Needs root, iproute2, etcd, bird2 and frr. Reference: docs/lab.md.

Examples:
  twill lab up                                   # 2 racks, 4 hosts, 2 workloads each
  twill lab exec h1w1 -- traceroute -n 10.65.x.y
  twill lab check                                # every pair probed vs what policy says
  twill lab apply -f examples/lab/tenant-isolation.yaml
  twill lab traceroute h1w1 h4w2
  twill lab down`,
    );

  cmd
    .command("up")
    .description(
      "Build a lab: namespaces, etcd, FRR routers, an agent and BIRD per host, workloads",
    )
    .option("--name <name>", "the lab's name: 1-12 lower-case letters and digits", "lab")
    .addOption(
      new Option("--topology <topology>", "how hosts are connected")
        .choices(["flat", "reflectors", "leaf-spine"])
        .default("leaf-spine"),
    )
    .option("--hosts <n>", "hosts per site (default: 2 per rack in leaf-spine, else 3)")
    .option(
      "--racks <n>",
      "racks per site, each with a ToR router (leaf-spine or reflectors; default 2 for leaf-spine, else 1)",
    )
    .option("--workloads-per-host <n>", "workloads started on every host", "2")
    .addOption(new Option("--etcd <members>", "etcd members").choices(["1", "3"]).default("1"))
    .option("--ipv6", "dual stack: IPv6 on the fabric, in BGP and for workloads")
    .addOption(
      new Option("--sites <n>", "data centers, joined only by routers")
        .choices(["1", "2"])
        .default("1"),
    )
    .option(
      "--timeout <seconds>",
      "bound of each wait (agents ready, a workload, BGP converged)",
      "60",
    )
    .option("--no-wait-bgp", "return once workloads are attached, without waiting for BGP")
    .option("--keep-on-failure", "leave a lab that failed half-way in place, to inspect its logs")
    .addHelpText(
      "after",
      `
Topologies (drawings in docs/lab.md):
  flat        hosts on one L2 segment with a router; node-to-node BGP mesh
  reflectors  the same, mesh off; two hosts per site are route reflectors.
              With --racks R: racks behind ToR routers as in leaf-spine, the
              two reflectors in different racks, iBGP across racks
  leaf-spine  racks, each a ToR router (FRR) peering eBGP with its hosts (a
              private AS per host) and with a spine router

Every lab also has: a management segment carrying etcd to the agents (never
workload traffic), and a plain machine per site (plain1) with no twill
component, behind a router, reaching workloads by routing alone.
Workloads h<host>w<n> get labels tenant=a|b (alternating) and app=web|db|...

Examples:
  twill lab up --topology flat --hosts 3
  twill lab up --racks 2 --hosts 4 --workloads-per-host 3
  twill lab up --name dc --sites 2 --ipv6`,
    )
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const options: Partial<LabOptions> = {
        name: String(o["name"]),
        topology: o["topology"] as LabTopology,
        etcd: Number(o["etcd"]) as 1 | 3,
        sites: Number(o["sites"]) as 1 | 2,
        ipv6: o["ipv6"] === true,
      };
      const hosts = wholeNumber("--hosts", o["hosts"] as string | undefined);
      const racks = wholeNumber("--racks", o["racks"] as string | undefined);
      const wph = wholeNumber("--workloads-per-host", o["workloadsPerHost"] as string | undefined);
      const timeout = wholeNumber("--timeout", o["timeout"] as string | undefined) ?? 60;
      if (hosts !== undefined) options.hosts = hosts;
      if (racks !== undefined) options.racks = racks;
      if (wph !== undefined) options.workloadsPerHost = wph;
      const { labUp } = await lab();
      const { progressPrinter } = await import("../../lab/progress-printer.js");
      const printer = progressPrinter({ write: (s) => ctx.output.err(s), tty: deps.isTTY() });
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      let info: LabInfo;
      try {
        info = await labUp(options, {
          ...settings,
          signal: abort.signal,
          onProgress: (p) => printer.onProgress(p),
          keepOnFailure: o["keepOnFailure"] === true,
          waitForBgp: o["waitBgp"] !== false,
          timeoutMs: timeout * 1000,
        });
      } catch (err) {
        throw asLabFailure(err, "lab up");
      } finally {
        printer.stop();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
      out(formatLabSummary(info));
    });

  cmd
    .command("status")
    .description("Hosts, agents (alive, ready), BGP sessions, routers and workloads of a lab")
    .option("--name <name>", NAME_HELP)
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["text", "json"])
        .default("text"),
    )
    .action(async (o: { name?: string; output: string }) => {
      const { labStatus } = await lab();
      const status = await labStatus(await labName(o.name), settings);
      out(o.output === "json" ? `${JSON.stringify(status, null, 2)}\n` : formatLabStatus(status));
    });

  cmd
    .command("exec")
    .description("Run a command inside a lab machine's network namespace")
    .argument(
      "<machine>",
      "a host (h1), workload (h1w1), router (tor1, spine1, fab1), plain machine (plain1) or mgmt",
    )
    .argument("<command...>", "the command and its arguments, after --")
    .option("--name <name>", NAME_HELP)
    .addHelpText(
      "after",
      `
The command's stdin, stdout, stderr and exit code are the terminal's. Inside,
'twill' is on PATH and TWILL_ETCD_ENDPOINTS names the lab's etcd; 'vtysh' on
a router and 'birdc' on a host talk to that machine's daemon.

Examples:
  twill lab exec h1w1 -- ping -c1 10.65.3.4
  twill lab exec h1w1 -- traceroute -n 10.65.3.4
  twill lab exec h1 -- ip route
  twill lab exec h1 -- birdc show protocols
  twill lab exec tor1 -- vtysh -c 'show bgp summary'
  twill lab exec mgmt -- twill get nodes`,
    )
    .action(async (machine: string, command: string[], o: { name?: string }) => {
      const { labExecTarget } = await lab();
      const target = labExecTarget(await labName(o.name), machine, command, settings);
      const code = await deps.execInherit(["ip", "netns", "exec", target.ns, ...target.argv], {
        ...process.env,
        ...target.env,
      });
      // The command's own exit code, as kubectl exec does.
      if (code !== 0) ctx.fail(code as ExitCode);
    });

  cmd
    .command("apply")
    .description("Apply resources (YAML/JSON) to the lab's datastore")
    .requiredOption("-f, --filename <path...>", "file or directory of resources; - for stdin")
    .option("--name <name>", NAME_HELP)
    .addHelpText(
      "after",
      `
Runs 'twill apply' inside the lab's management namespace against its etcd.

Examples:
  twill lab apply -f examples/lab/tenant-isolation.yaml`,
    )
    .action(async (o: { filename: string[]; name?: string }) => {
      const { labTwillCommand } = await lab();
      const args = ["apply", ...o.filename.flatMap((f) => ["-f", f])];
      const code = await deps.execInherit(
        labTwillCommand(await labName(o.name), args, settings),
        process.env,
      );
      if (code !== 0) ctx.fail(code as ExitCode);
    });

  cmd
    .command("add-workload")
    .description("Start one more workload on a host, attached through the CNI plugin")
    .argument("<host>", "the host, e.g. h2")
    .option("--labels <k=v,...>", "its labels (default: tenant and app like the others)")
    .option("--name <name>", NAME_HELP)
    .addHelpText(
      "after",
      `
Examples:
  twill lab add-workload h2
  twill lab add-workload h3 --labels tenant=c,app=web`,
    )
    .action(async (host: string, o: { labels?: string; name?: string }) => {
      const { labAddWorkload } = await lab();
      const labels = parseLabels(o.labels);
      const w = await labAddWorkload(await labName(o.name), host, {
        ...settings,
        ...(labels !== undefined ? { labels } : {}),
      }).catch((err: unknown) => {
        throw asLabFailure(err, "add-workload");
      });
      const addrs = [w.ipv4, w.ipv6].filter((a) => a !== undefined).join(", ");
      out(`workload ${w.name} on ${w.host}: ${addrs} (${labelText(w.labels)})\n`);
    });

  cmd
    .command("check")
    .description(
      "Probe every workload pair (TCP and ping) and compare with what the policy says; exit 1 on any difference",
    )
    .option("--name <name>", NAME_HELP)
    .option("--port <port>", "the TCP port probed", "80")
    .option(
      "--attempts <n>",
      "tries of a probe that does not match yet (policy takes a moment to land)",
      "6",
    )
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["text", "json"])
        .default("text"),
    )
    .addHelpText(
      "after",
      `
For every ordered pair of workloads: a TCP connection to the port and a
ping (also over IPv6 in a dual-stack lab). What policy says comes from the
resources in the lab's datastore, evaluated by twill's reference evaluator
(source's egress and destination's ingress, Calico and Kubernetes
NetworkPolicy, tiers, profiles). A probe that does not match is tried again
(--attempts) before it counts. The first check starts a small responder in
every workload (it answers on the port with the address it saw) and leaves
it running for the next checks; 'lab down' stops them.

Exit code: 0 when every probe is as the policy says, 1 otherwise.

Examples:
  twill lab check
  twill lab apply -f examples/lab/tenant-isolation.yaml && twill lab check
  twill lab check --port 8080 -o json`,
    )
    .action(async (o: { name?: string; port: string; attempts: string; output: string }) => {
      const port = wholeNumber("--port", o.port) ?? 80;
      if (port < 1 || port > 65535) {
        throw new UsageError(`--port: ${port} is not a port (1-65535)`, { command: "lab check" });
      }
      const attempts = Math.max(1, wholeNumber("--attempts", o.attempts) ?? 6);
      const { labCheck } = await import("../../lab/lab-check.js");
      const report = await labCheck(await labName(o.name), { ...settings, port, attempts }).catch(
        (err: unknown) => {
          throw asLabFailure(err, "lab check");
        },
      );
      if (o.output === "json") {
        out(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        const { renderCheck } = await import("../../lab/render-check.js");
        out(renderCheck(report, { color: deps.color?.() ?? false }));
      }
      if (report.mismatches > 0) ctx.fail(EXIT.failed);
    });

  cmd
    .command("traceroute")
    .description(
      "A traceroute between lab machines, every hop named (hosts and routers: no tunnel)",
    )
    .argument("<from>", "where to start: a workload (h1w1), host, router or plain machine")
    .argument("<to>", "a workload, host, router, plain machine, or an address")
    .option("--name <name>", NAME_HELP)
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["text", "json"])
        .default("text"),
    )
    .addHelpText(
      "after",
      `
Runs 'traceroute -n -q 1 -w 1' inside FROM's namespace and names the machine
behind every hop. Exit code 1 when the destination did not answer.

Examples:
  twill lab traceroute h1w1 h4w2
  twill lab traceroute plain1 h1w1`,
    )
    .action(async (from: string, to: string, o: { name?: string; output: string }) => {
      const { labTraceroute } = await import("../../lab/lab-trace.js");
      const t = await labTraceroute(await labName(o.name), from, to, settings).catch(
        (err: unknown) => {
          throw asLabFailure(err, "lab traceroute");
        },
      );
      if (o.output === "json") {
        out(`${JSON.stringify(t, null, 2)}\n`);
      } else {
        const role = t.to.role === undefined ? "" : `, ${t.to.role}`;
        out(`traceroute from ${t.from} to ${t.to.name} (${t.to.addr}${role}):\n`);
        out(`${t.annotated.join("\n")}\n`);
        out(`path: ${t.path}${t.reached ? "" : " (destination not reached)"}\n`);
      }
      if (!t.reached) ctx.fail(EXIT.failed);
    });

  cmd
    .command("down")
    .description(
      "Remove a lab: its processes, namespaces and state (also after a crash; safe to repeat)",
    )
    .option("--name <name>", NAME_HELP)
    .option("--all", "remove every lab on this machine")
    .action(async (o: { name?: string; all?: boolean }) => {
      const { labDown, listLabs } = await lab();
      const names = o.all === true ? await listLabs(settings) : [await labName(o.name)];
      for (const name of names) {
        const r = await labDown(name, settings);
        if (r.namespaces === 0 && r.processes === 0 && !r.stateDir) {
          out(`lab "${name}": nothing to remove\n`);
        } else {
          out(`lab "${name}" removed: ${r.namespaces} namespaces, ${r.processes} processes\n`);
        }
      }
      if (names.length === 0) out("no lab to remove\n");
    });
}

/**
 * The lab's own failures (an agent that exited, BGP not converging) carry
 * "Unavailable" or "Timeout", which the CLI words as an unreachable
 * datastore: shown as themselves instead, exit code 1.
 */
function asLabFailure(err: unknown, what: string): unknown {
  if (err instanceof TwillError && (err.code === "Unavailable" || err.code === "Timeout")) {
    return new Error(`${what} failed: ${err.message}`, { cause: err.cause });
  }
  return err;
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

function describeOptions(o: LabOptions): string {
  const parts: string[] = [o.topology];
  if (o.sites > 1) parts.push(`${o.sites} sites`);
  if (o.topology === "leaf-spine" || o.racks > 1)
    parts.push(`${o.racks} rack${o.racks > 1 ? "s" : ""}${o.sites > 1 ? " each" : ""}`);
  parts.push(`${o.hosts * o.sites} hosts`);
  parts.push(`etcd ${o.etcd} member${o.etcd > 1 ? "s" : ""}`);
  if (o.ipv6) parts.push("dual stack");
  return parts.join(", ");
}

/** The summary printed at the end of `lab up`. */
export function formatLabSummary(info: LabInfo): string {
  const { plan } = info;
  const lines: string[] = [];
  lines.push(
    `\nLab "${info.name}" is up in ${(info.elapsedMs / 1000).toFixed(1)} s: ${describeOptions(info.options)}\n\n`,
  );
  const perHost = new Map<string, string[]>();
  for (const w of info.workloads) perHost.set(w.host, [...(perHost.get(w.host) ?? []), w.name]);
  lines.push(
    formatTable(
      ["host", "site", "rack", "address", "as", "workloads"],
      plan.hosts.map((h) => [
        h.name + (h.routeReflector ? " (RR)" : ""),
        String(h.site),
        h.rack !== undefined ? `rack${h.rack}` : "-",
        h.ipv4 + (h.ipv6 !== undefined ? ` ${h.ipv6}` : ""),
        String(h.asNumber),
        (perHost.get(h.name) ?? []).join(" "),
      ]),
    ),
  );
  lines.push("\n");
  if (info.workloads.length > 0) {
    lines.push(workloadsTable(info.workloads));
    lines.push("\n");
  }
  const routers = plan.routers.map((r) => `${r.name} (AS ${r.asNumber})`).join(", ");
  const plains = plan.plains
    .map((p) => `${p.name} ${p.ipv4.split("/")[0] ?? ""} behind ${p.router}`)
    .join(", ");
  lines.push(`Routers: ${routers}\nPlain machines: ${plains}\n`);
  if (info.sessions.length > 0) {
    const up = info.sessions.filter((s) => s.established).length;
    const onHosts = info.sessions.filter((s) =>
      plan.hosts.some((h) => h.name === s.speaker),
    ).length;
    lines.push(
      `BGP sessions established: ${up} of ${info.sessions.length} (${onHosts} seen from hosts, ${info.sessions.length - onHosts} from routers)\n`,
    );
  }
  const a = info.workloads[0];
  const b = [...info.workloads].reverse().find((w) => w.host !== a?.host) ?? info.workloads[1];
  const flag = info.name === "lab" ? "" : ` --name ${info.name}`;
  lines.push("\nTry:\n");
  if (a && b && b.ipv4 !== undefined) {
    lines.push(`  twill lab exec${flag} ${a.name} -- ping -c1 ${b.ipv4}\n`);
    lines.push(`  twill lab exec${flag} ${a.name} -- traceroute -n ${b.ipv4}\n`);
    const plain = plan.plains[0];
    if (plain) lines.push(`  twill lab exec${flag} ${plain.name} -- ping -c1 ${b.ipv4}\n`);
  }
  lines.push(`  twill lab status${flag}\n  twill lab down${flag}\n`);
  return lines.join("");
}

export function formatLabStatus(s: LabStatus): string {
  const lines: string[] = [];
  lines.push(
    `Lab "${s.name}" (${s.status}, since ${s.createdAt}): ${describeOptions(s.options)}\n`,
  );
  lines.push(
    `etcd: ${s.etcd.map((m) => `${m.name} ${m.healthy ? "healthy" : "UNHEALTHY"}`).join(", ")}\n\n`,
  );
  const sessionText = (list: { established: boolean }[] | undefined): string =>
    list === undefined
      ? "-"
      : `${list.filter((x) => x.established).length}/${list.length} established`;
  lines.push(
    formatTable(
      ["host", "address", "as", "agent", "ready", "bgp"],
      s.hosts.map((h) => [
        h.name,
        h.address,
        String(h.asNumber),
        h.agent.alive ? `running (pid ${h.agent.pid ?? "?"})` : "NOT RUNNING",
        h.agent.ready ? "yes" : "no",
        sessionText(h.sessions),
      ]),
    ),
  );
  lines.push("\n");
  lines.push(
    formatTable(
      ["router", "role", "as", "bgp", "peers down"],
      s.routers.map((r) => [
        r.name,
        r.role,
        String(r.asNumber),
        sessionText(r.sessions),
        r.sessions
          .filter((x) => !x.established)
          .map((x) => `${x.peer} (${x.state})`)
          .join(" "),
      ]),
    ),
  );
  lines.push("\n");
  if (s.workloads.length > 0) {
    lines.push(workloadsTable(s.workloads));
  }
  return lines.join("");
}

/** The workloads table of `lab up`'s summary and of `lab status`. */
function workloadsTable(
  workloads: readonly {
    name: string;
    host: string;
    ipv4?: string | undefined;
    ipv6?: string | undefined;
    labels: Record<string, string>;
  }[],
): string {
  return formatTable(
    ["workload", "host", "address", "labels"],
    workloads.map((w) => [
      w.name,
      w.host,
      [w.ipv4, w.ipv6].filter((a) => a !== undefined).join(" "),
      labelText(w.labels),
    ]),
  );
}
