// `twill cni install`: puts the plugin where container runtimes look for it
// and writes a network config list they all read (containerd's CRI plugin,
// CRI-O, Podman with the CNI backend):
//
//   <bin-dir>/twill        #!/bin/sh wrapper: exec <node> <dist>/src/cni/main.js
//   <bin-dir>/twill-ipam   the same, in IPAM-only mode (--ipam)
//   <conf-dir>/10-twill.conflist
//
// The executables are small wrappers around this installation's Node.js and
// built plugin (absolute paths: runtimes run plugins with a bare
// environment). Every file is written to a temporary name and renamed into
// place, so a runtime watching the directories never reads half a file.
import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { TwillError } from "../util/errors.js";
import { DEFAULT_POLICY_TIMEOUT_SECONDS, SUPPORTED_VERSIONS } from "./cni-config.js";

export const DEFAULT_BIN_DIR = "/opt/cni/bin";
export const DEFAULT_CONF_DIR = "/etc/cni/net.d";
export const DEFAULT_NETWORK_NAME = "twill";
export const DEFAULT_CONFLIST_NAME = "10-twill.conflist";

export interface InstallOptions {
  binDir: string;
  confDir: string;
  /** The network's name (what `podman run --network NAME` names). */
  name?: string;
  /** The conflist's cniVersion (default 1.0.0, which every current runtime reads). */
  cniVersion?: string;
  etcdEndpoints?: string;
  etcdCaCertFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  nodename?: string;
  mtu?: number;
  /** Wait for the agent to program each endpoint's policy (default true). */
  policyWait?: boolean;
  policyTimeoutSeconds?: number;
  /** The Node.js binary the wrappers run (default: this one). */
  node: string;
  /** The built plugin, dist/src/cni/main.cjs. */
  plugin: string;
}

export interface InstallResult {
  files: string[];
  conflist: Record<string, unknown>;
}

/** Quote for /bin/sh: one argument, whatever it holds. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

export function wrapperScript(node: string, plugin: string, ipam: boolean): string {
  return [
    "#!/bin/sh",
    `# twill CNI plugin${ipam ? " (IPAM only)" : ""}, installed by 'twill cni install'.`,
    `exec ${shellQuote(node)} ${shellQuote(plugin)}${ipam ? " --ipam" : ""} "$@"`,
    "",
  ].join("\n");
}

export function buildConflist(
  options: Omit<InstallOptions, "binDir" | "confDir" | "node" | "plugin">,
): Record<string, unknown> {
  const cniVersion = options.cniVersion ?? "1.0.0";
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new TwillError(
      "Invalid",
      `--cni-version: "${cniVersion}" is not one of ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  const plugin: Record<string, unknown> = { type: "twill" };
  if (options.etcdEndpoints !== undefined) plugin["etcd_endpoints"] = options.etcdEndpoints;
  if (options.etcdCaCertFile !== undefined) plugin["etcd_ca_cert_file"] = options.etcdCaCertFile;
  if (options.etcdCertFile !== undefined) plugin["etcd_cert_file"] = options.etcdCertFile;
  if (options.etcdKeyFile !== undefined) plugin["etcd_key_file"] = options.etcdKeyFile;
  if (options.nodename !== undefined) plugin["nodename"] = options.nodename;
  if (options.mtu !== undefined) plugin["mtu"] = options.mtu;
  plugin["ipam"] = { type: "twill-ipam" };
  plugin["policy"] = {
    waitForProgrammed: options.policyWait ?? true,
    timeoutSeconds: options.policyTimeoutSeconds ?? DEFAULT_POLICY_TIMEOUT_SECONDS,
  };
  // Addresses and MACs asked for by the runtime (podman run --ip / --mac-address).
  plugin["capabilities"] = { ips: true, mac: true };
  return { cniVersion, name: options.name ?? DEFAULT_NETWORK_NAME, plugins: [plugin] };
}

async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${Date.now()}-${process.pid}.tmp`);
  await writeFile(temp, content, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
}

export async function installCni(options: InstallOptions): Promise<InstallResult> {
  const conflist = buildConflist(options);
  const files = [
    join(options.binDir, "twill"),
    join(options.binDir, "twill-ipam"),
    join(options.confDir, DEFAULT_CONFLIST_NAME),
  ] as const;
  await writeAtomically(files[0], wrapperScript(options.node, options.plugin, false), 0o755);
  await writeAtomically(files[1], wrapperScript(options.node, options.plugin, true), 0o755);
  await writeAtomically(files[2], `${JSON.stringify(conflist, null, 2)}\n`, 0o644);
  return { files: [...files], conflist };
}
