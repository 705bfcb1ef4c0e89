// The CNI plugin program behind the executable (main.ts, which runs it from
// the bundle): `twill` (main plugin) and `twill-ipam` (IPAM only) are one
// program; the mode comes from the name it was run as (argv[1], e.g. a
// symlink or the installed wrapper) or `--ipam`, else from the config's
// `type`.
//
// It loads nothing heavy before it knows the command: VERSION is answered
// with the core alone; the datastore client (etcd's JSON gateway over
// node:http, not the gRPC client), IPAM and the schemas only for commands
// that need them. In the bundle these imports cost no file look-ups, only
// the modules' own initialisation, which is then skipped for VERSION.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename } from "node:path";
import { isatty } from "node:tty";
import type { CniDeps } from "./cni-deps.js";
import { runCni } from "./run-cni.js";
import type { PluginMode } from "./run-cni.js";

/**
 * Deadline per datastore request. Longer than an interactive tool's: a node
 * starting many pods at once is busy, and a CNI call that fails for
 * impatience costs the runtime a retry of the whole ADD.
 */
const DATASTORE_TIMEOUT_MS = 10_000;

/**
 * Compare-and-swap retries per IPAM operation. A node starting (or
 * stopping) dozens of pods at once has them all writing its one block;
 * each lost race costs a re-read and a jittered pause, so a burst needs
 * more rounds than IPAM's default before every writer has had its turn.
 */
const IPAM_MAX_RETRIES = 100;

/**
 * The network config: stdin to its end. Read straight from fd 0 (the
 * runtime's pipe or file), without setting up process.stdin's stream; a
 * non-blocking pipe (EAGAIN) is read through the stream.
 */
async function readStdin(): Promise<string> {
  if (isatty(0)) return "";
  try {
    return readFileSync(0, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function realDeps(): Promise<CniDeps> {
  const [{ Iproute2 }, { ROUTE_PROTOCOL }, { execPlugin }, { acquireHostLock }] = await Promise.all(
    [
      import("./iproute2.js"),
      import("./netlink.js"),
      import("./exec-plugin.js"),
      import("./host-lock.js"),
    ],
  );
  return {
    netlink: new Iproute2({ routeProtocol: ROUTE_PROTOCOL }),
    openDatastore: async (options) => {
      const [{ EtcdHttpBackend }, { ResourceStore }, { Ipam }] = await Promise.all([
        import("./etcd-http-backend.js"),
        import("../datastore/resource-store.js"),
        import("../ipam/ipam.js"),
      ]);
      const backend = new EtcdHttpBackend({
        endpoints: options.endpoints,
        timeoutMs: DATASTORE_TIMEOUT_MS,
        ...(options.tls ? { tls: options.tls } : {}),
        ...(options.username !== undefined ? { username: options.username } : {}),
        ...(options.password !== undefined ? { password: options.password } : {}),
      });
      const store = new ResourceStore(
        backend,
        options.prefix !== undefined ? { prefix: options.prefix } : {},
      );
      const ipam = new Ipam(store, { maxRetries: IPAM_MAX_RETRIES });
      return { store, ipam, close: () => backend.close() };
    },
    execPlugin,
    lockIpam: () => acquireHostLock(),
    hostname: () => hostname(),
    now: () => Date.now(),
    log: (entry) => {
      process.stderr.write(
        `${JSON.stringify({ time: new Date().toISOString(), plugin: "twill", ...entry })}\n`,
      );
    },
  };
}

function modeOf(argv: readonly string[]): PluginMode | undefined {
  if (argv.includes("--ipam")) return "ipam";
  const name = basename(argv[1] ?? "");
  return name === "twill-ipam" || name.startsWith("twill-ipam.") ? "ipam" : undefined;
}

/** Runs one CNI call on this process's stdin, environment and argv; resolves with the exit code. */
export async function main(): Promise<number> {
  let stdin: string;
  try {
    stdin = await readStdin();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    process.stdout.write(
      `${JSON.stringify({ cniVersion: "1.1.0", code: 5, msg: "error reading stdin", details: msg })}\n`,
    );
    return 1;
  }
  const env = process.env;
  // VERSION (and a missing or unknown command) need no deps at all.
  const needsDeps = env["CNI_COMMAND"] !== "VERSION";
  const deps = needsDeps ? await realDeps() : (undefined as unknown as CniDeps);
  const mode = modeOf(process.argv);
  const outcome = await runCni(env, stdin, deps, mode ? { mode } : {});
  await new Promise<void>((resolve) => process.stdout.write(outcome.stdout, () => resolve()));
  return outcome.exitCode;
}
