// The `twill` command line: builds the commander program, runs one command
// and turns what happened into an exit code. Everything it touches comes in
// through `CliDeps` (output streams, files, stdin, the datastore opener), so
// the whole CLI runs in tests against captured output and a memory store.
//
//   argv ─► commander (parse, --help, usage errors ─► exit 2)
//             └─► command action ─► CommandContext ─► store / files / output
//   thrown errors ─► cli-errors (message on stderr, exit code)
import { Command, CommanderError } from "commander";
import type { CliStore, DatastoreFlags } from "./cli-store.js";
import { EXIT, exitCodeFor, formatError } from "./cli-errors.js";
import type { ExitCode } from "./cli-errors.js";
import type { CommandContext } from "./context.js";
import type { Output } from "./output.js";
import type { InputFiles } from "./read-inputs.js";
import { registerAgent } from "./commands/agent.js";
import { registerCni } from "./commands/cni.js";
import { registerDelete } from "./commands/delete.js";
import { registerGet } from "./commands/get.js";
import { registerIpam } from "./commands/ipam.js";
import { registerLab } from "./commands/lab.js";
import { registerLabel } from "./commands/label.js";
import { registerNode } from "./commands/node.js";
import { registerPatch } from "./commands/patch.js";
import { registerValidate } from "./commands/validate.js";
import { registerVersion } from "./commands/version.js";
import { registerWrite } from "./commands/write.js";

export interface CliDeps extends InputFiles {
  output: Output;
  /** Environment variables (TWILL_ETCD_*). */
  env: Record<string, string | undefined>;
  /** Opens the datastore from the global flags and `env`. Called at most once per run. */
  openStore(flags: DatastoreFlags, env: Record<string, string | undefined>): Promise<CliStore>;
  /** For `twill version`. */
  versions(): Promise<{ twill: string; node: string }>;
  /** Help text width; 100 when not given. */
  helpWidth?: number;
}

const ROOT_HELP = `
Datastore: etcd v3. Each --etcd-* flag falls back to its TWILL_ETCD_* environment
variable; a flag wins. Several endpoints (comma-separated) are one cluster.

Exit codes:
  0  success
  1  invalid input (validation errors, unreadable or unparsable files) or other failure
  2  usage error (unknown command, flag, kind or output format; missing argument)
  3  not found
  4  already exists
  5  conflict (the resource changed since it was read)
  6  datastore unavailable

Examples:
  twill validate -f examples/
  twill apply -f examples/
  twill get gnp -o yaml
  twill label node host-1 rack=rack-1
  twill delete gnp allow-cluster-dns

Run 'twill <command> --help' for a command's flags and examples.`;

/** Runs `twill` with `argv` (the arguments after the program name); resolves to the exit code. */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const { output } = deps;
  let exitCode: ExitCode = EXIT.ok;
  let store: Promise<CliStore> | undefined;

  const program = new Command("twill");
  const ctx: CommandContext = {
    output,
    files: deps,
    store: () => {
      store ??= deps.openStore(datastoreFlags(program), deps.env);
      return store;
    },
    fail: (code) => {
      if (exitCode === EXIT.ok) exitCode = code;
    },
    versions: () => deps.versions(),
  };

  const helpWidth = deps.helpWidth ?? 100;
  let commanderWroteErr = false;
  program
    .description(
      "twill: pure Layer 3 networking for containers. Manages projectcalico.org/v3 resources in etcd.",
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => output.out(s),
      writeErr: (s) => {
        commanderWroteErr = true;
        output.err(s);
      },
      getOutHelpWidth: () => helpWidth,
      getErrHelpWidth: () => helpWidth,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .showHelpAfterError("(run with --help for usage)")
    .helpCommand(true)
    .option(
      "--etcd-endpoints <urls>",
      "etcd endpoints, comma-separated: http(s)://host:port or unix:///path (env TWILL_ETCD_ENDPOINTS; default http://127.0.0.1:2379)",
    )
    .option("--etcd-ca-cert-file <path>", "CA certificate for TLS (env TWILL_ETCD_CA_CERT_FILE)")
    .option("--etcd-cert-file <path>", "client certificate for TLS (env TWILL_ETCD_CERT_FILE)")
    .option("--etcd-key-file <path>", "client key for TLS (env TWILL_ETCD_KEY_FILE)")
    .option("--etcd-username <name>", "etcd user (env TWILL_ETCD_USERNAME)")
    .option("--etcd-password <password>", "etcd password (env TWILL_ETCD_PASSWORD)")
    .addHelpText("after", ROOT_HELP);

  registerWrite(program, ctx, "apply");
  registerWrite(program, ctx, "create");
  registerWrite(program, ctx, "replace");
  registerDelete(program, ctx);
  registerGet(program, ctx);
  registerPatch(program, ctx);
  registerLabel(program, ctx);
  registerValidate(program, ctx);
  registerVersion(program, ctx);
  registerIpam(program, ctx);
  registerCni(program, ctx);
  registerAgent(program, ctx, deps.env);
  registerNode(program, ctx, deps.env);
  registerLab(program, ctx);

  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return EXIT.usage;
    }
    await program.parseAsync([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message or the help. Help asked
      // for goes to stdout (exit 0); help or a message because of a mistake
      // goes to stderr (exit 2). Commander's own exit code is not used: it
      // borrows process.exitCode, which embedding code may have set.
      const asked = ["commander.helpDisplayed", "commander.help", "commander.version"].includes(
        err.code,
      );
      return asked && !commanderWroteErr ? EXIT.ok : EXIT.usage;
    }
    output.err(formatError(err));
    return exitCodeFor(err);
  } finally {
    if (store) {
      try {
        await (await store).close();
      } catch {
        // Opening failed (already reported) or closing failed: nothing to release.
      }
    }
  }
  return exitCode;
}

function datastoreFlags(program: Command): DatastoreFlags {
  const o = program.opts<{
    etcdEndpoints?: string;
    etcdCaCertFile?: string;
    etcdCertFile?: string;
    etcdKeyFile?: string;
    etcdUsername?: string;
    etcdPassword?: string;
  }>();
  const flags: DatastoreFlags = {};
  if (o.etcdEndpoints !== undefined) flags.etcdEndpoints = o.etcdEndpoints;
  if (o.etcdCaCertFile !== undefined) flags.etcdCaFile = o.etcdCaCertFile;
  if (o.etcdCertFile !== undefined) flags.etcdCertFile = o.etcdCertFile;
  if (o.etcdKeyFile !== undefined) flags.etcdKeyFile = o.etcdKeyFile;
  if (o.etcdUsername !== undefined) flags.etcdUsername = o.etcdUsername;
  if (o.etcdPassword !== undefined) flags.etcdPassword = o.etcdPassword;
  return flags;
}
