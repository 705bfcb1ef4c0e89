// The CNI plugin's core: environment and stdin in, stdout and exit code out.
// No process globals: main.ts passes the real environment, stdin and deps;
// tests pass their own. Failures of any kind come out as the CNI error
// object on stdout with exit code 1 (where the reference library and libcni
// put and look for it).
//
//   CNI_COMMAND ─► VERSION: answered here, nothing else loaded
//              └─► env checks (4) ─► config: decode (6), name (7), version (1)
//                  ─► version gates (GC, STATUS need 1.1.0) ─► cni-commands.ts
import {
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  compareVersions,
  decodeConfig,
  parseNetConf,
} from "./cni-config.js";
import type { CniDeps } from "./cni-deps.js";
import { commandOf, parseCniEnv } from "./cni-env.js";
import { CNI_ERROR, CniError, cniErrorFrom, errorObject } from "./cni-error.js";
import type { PluginMode } from "./cni-commands.js";

export type { PluginMode } from "./cni-commands.js";

export interface CniOutcome {
  stdout: string;
  exitCode: number;
}

export interface RunCniOptions {
  /** "ipam" for the IPAM-only plugin (twill-ipam); default: by the config's type. */
  mode?: PluginMode;
}

/** The VERSION answer: the input's cniVersion when it is one we speak, else the latest. */
export function versionAnswer(stdin: string): string {
  let version: string = LATEST_VERSION;
  try {
    const v = decodeConfig(stdin)["cniVersion"];
    if (typeof v === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) version = v;
  } catch {
    // VERSION ignores what it cannot read, as the reference library does.
  }
  return `${JSON.stringify({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS })}\n`;
}

/** The cniVersion the config asked for, for error objects (the latest when unreadable). */
function versionForErrors(stdin: string): string {
  try {
    const v = decodeConfig(stdin)["cniVersion"];
    return typeof v === "string" && v !== "" ? v : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}

export async function runCni(
  env: Record<string, string | undefined>,
  stdin: string,
  deps: CniDeps,
  options: RunCniOptions = {},
): Promise<CniOutcome> {
  try {
    const command = commandOf(env);
    if (command === "VERSION") return { stdout: versionAnswer(stdin), exitCode: 0 };
    const cniEnv = parseCniEnv(env);
    const mode: PluginMode =
      options.mode ?? (typeFieldOf(stdin) === "twill-ipam" ? "ipam" : "main");
    const conf = parseNetConf(stdin, mode);
    if (
      (command === "GC" || command === "STATUS") &&
      compareVersions(conf.cniVersion, "1.1.0") < 0
    ) {
      throw new CniError(
        CNI_ERROR.incompatibleVersion,
        `config version does not allow ${command}`,
        `${command} needs cniVersion 1.1.0 or later, the config has "${conf.cniVersion}"`,
      );
    }
    const { runCommand } = await import("./cni-commands.js");
    const stdout = await runCommand(mode, conf, cniEnv, env, deps);
    return { stdout, exitCode: 0 };
  } catch (err) {
    const failure = cniErrorFrom(err, "internal error");
    return {
      stdout: `${JSON.stringify(errorObject(failure, versionForErrors(stdin)))}\n`,
      exitCode: 1,
    };
  }
}

function typeFieldOf(stdin: string): unknown {
  try {
    return decodeConfig(stdin)["type"];
  } catch {
    return undefined;
  }
}
