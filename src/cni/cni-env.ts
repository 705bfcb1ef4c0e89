// The CNI_* environment of one invocation, checked per command as the CNI
// specification and its reference library (skel) do: every missing variable
// is reported at once (code 4, naming them), as are a container ID or an
// interface name the plugin cannot use.
import { CNI_ERROR, CniError } from "./cni-error.js";

export const CNI_COMMANDS = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

export interface CniEnv {
  command: CniCommand;
  /** CNI_CONTAINERID (ADD, DEL, CHECK). */
  containerId: string;
  /** CNI_NETNS: a path such as /var/run/netns/x or /proc/1234/ns/net ("" when not given). */
  netns: string;
  /** CNI_IFNAME (ADD, DEL, CHECK). */
  ifname: string;
  /** CNI_ARGS as key/value pairs, in order. */
  args: Map<string, string>;
  /** CNI_PATH split into directories. */
  path: string[];
}

/** Variables each command needs (CNI_NETNS is optional for DEL: the netns may be gone). */
const REQUIRED: Record<CniCommand, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  VERSION: [],
  STATUS: [],
  GC: [],
};

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Why `name` cannot be an interface name (as the reference library checks), or undefined. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (Buffer.byteLength(name) > 15) return `"${name}" is longer than 15 bytes`;
  if (name === "." || name === "..") return `"${name}" is not a valid name`;
  if (/[/:\s]/.test(name)) return `"${name}" contains '/', ':' or whitespace`;
  return undefined;
}

/** The command named by CNI_COMMAND; code 4 when missing or unknown. */
export function commandOf(env: Record<string, string | undefined>): CniCommand {
  const command = env["CNI_COMMAND"];
  if (command === undefined || command === "") {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      "required env variables [CNI_COMMAND] missing",
    );
  }
  if (!(CNI_COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      `unknown CNI_COMMAND: ${command}`,
      `CNI_COMMAND must be one of ${CNI_COMMANDS.join(", ")}`,
    );
  }
  return command as CniCommand;
}

/** Parses CNI_ARGS ("K1=V1;K2=V2"); code 4 for a pair without "=". */
export function parseCniArgs(text: string | undefined): Map<string, string> {
  const args = new Map<string, string>();
  if (text === undefined || text === "") return args;
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) {
      throw new CniError(
        CNI_ERROR.invalidEnvironment,
        "invalid CNI_ARGS",
        `CNI_ARGS: "${pair}" is not KEY=VALUE`,
      );
    }
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return args;
}

/** Reads and checks the environment for `command`; CniError code 4 (or 3) otherwise. */
export function parseCniEnv(env: Record<string, string | undefined>): CniEnv {
  const command = commandOf(env);
  const missing = REQUIRED[command].filter((v) => (env[v] ?? "") === "");
  if (missing.length > 0) {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      `required env variables [${missing.join(",")}] missing`,
    );
  }
  const containerId = env["CNI_CONTAINERID"] ?? "";
  if (containerId !== "" && !CONTAINER_ID.test(containerId)) {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      "invalid characters in containerID",
      `CNI_CONTAINERID "${containerId}" must match ${CONTAINER_ID.source}`,
    );
  }
  const ifname = env["CNI_IFNAME"] ?? "";
  if (REQUIRED[command].includes("CNI_IFNAME")) {
    const problem = interfaceNameProblem(ifname);
    if (problem) {
      throw new CniError(
        CNI_ERROR.invalidEnvironment,
        "invalid CNI_IFNAME",
        `CNI_IFNAME ${problem}`,
      );
    }
  }
  return {
    command,
    containerId,
    netns: env["CNI_NETNS"] ?? "",
    ifname,
    args: parseCniArgs(env["CNI_ARGS"]),
    // Linux separates CNI_PATH entries with ':' (Windows would use ';').
    path: (env["CNI_PATH"] ?? "").split(":").filter((d) => d !== ""),
  };
}
