// One invocation's shared state: the parsed config and environment, the
// node name, the attachment's identity, and the datastore, opened on first
// use and closed when the command is done. Also the IPAM driver: twill's own
// IPAM in-process, or another IPAM plugin run from CNI_PATH.
import type { NetConf } from "./cni-config.js";
import type { CniDatastore, CniDeps, DatastoreOptions } from "./cni-deps.js";
import type { CniEnv } from "./cni-env.js";
import { CNI_ERROR, CniError, cniErrorFrom } from "./cni-error.js";
import { endpointIdentity } from "./endpoint-identity.js";
import type { EndpointIdentity } from "./endpoint-identity.js";

export const DEFAULT_ETCD_ENDPOINT = "http://127.0.0.1:2379";

/** Config fields, then TWILL_ETCD_* environment variables, then the default endpoint. */
export function datastoreOptions(
  conf: NetConf,
  env: Record<string, string | undefined>,
): DatastoreOptions {
  const pick = (value: string | undefined, name: string): string | undefined => {
    if (value !== undefined && value !== "") return value;
    const v = env[name];
    return v !== undefined && v !== "" ? v : undefined;
  };
  const d = conf.datastore;
  const endpoints = (pick(d.endpoints, "TWILL_ETCD_ENDPOINTS") ?? DEFAULT_ETCD_ENDPOINT)
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  const out: DatastoreOptions = { endpoints };
  const tls: NonNullable<DatastoreOptions["tls"]> = {};
  const ca = pick(d.caCertFile, "TWILL_ETCD_CA_CERT_FILE");
  const cert = pick(d.certFile, "TWILL_ETCD_CERT_FILE");
  const key = pick(d.keyFile, "TWILL_ETCD_KEY_FILE");
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  if (Object.keys(tls).length > 0) out.tls = tls;
  const username = pick(d.username, "TWILL_ETCD_USERNAME");
  const password = pick(d.password, "TWILL_ETCD_PASSWORD");
  if (username !== undefined) out.username = username;
  if (password !== undefined) out.password = password;
  if (d.prefix !== undefined) out.prefix = d.prefix;
  return out;
}

/** Config `nodename`, then TWILL_NODENAME, then NODENAME (Calico's), then the host name, lowercased. */
export function nodeName(
  conf: NetConf,
  env: Record<string, string | undefined>,
  hostname: () => string,
): string {
  if (conf.nodename !== undefined) return conf.nodename;
  for (const name of ["TWILL_NODENAME", "NODENAME"]) {
    const v = env[name];
    if (v !== undefined && v !== "") return v;
  }
  return hostname().toLowerCase();
}

export class Session {
  readonly conf: NetConf;
  readonly env: CniEnv;
  /** The process environment as given (handed on to a delegated plugin). */
  readonly rawEnv: Record<string, string | undefined>;
  readonly deps: CniDeps;
  readonly node: string;
  #identity: EndpointIdentity | undefined;
  #datastore: Promise<CniDatastore> | undefined;

  constructor(
    conf: NetConf,
    env: CniEnv,
    rawEnv: Record<string, string | undefined>,
    deps: CniDeps,
  ) {
    this.conf = conf;
    this.env = env;
    this.rawEnv = rawEnv;
    this.deps = deps;
    this.node = nodeName(conf, rawEnv, () => deps.hostname());
  }

  /** The attachment's identity (ADD, CHECK, DEL). */
  identity(): EndpointIdentity {
    this.#identity ??= endpointIdentity(this.conf, this.env, this.node);
    return this.#identity;
  }

  /** The datastore, opened once; an unreachable one is code 11 (try again later). */
  async datastore(): Promise<CniDatastore> {
    this.#datastore ??= this.deps
      .openDatastore(datastoreOptions(this.conf, this.rawEnv))
      .catch((err: unknown) => {
        throw cniErrorFrom(err, "cannot open the datastore");
      });
    return this.#datastore;
  }

  /** True when the IPAM is twill's own, run in this process. */
  get inProcessIpam(): boolean {
    return this.conf.ipam.type === "twill-ipam";
  }

  /**
   * Runs the delegated IPAM plugin with `command` and the whole config, as
   * the spec asks; its error object becomes ours (prefixed with its name).
   */
  async delegateIpam(command: string, stdin?: string): Promise<string> {
    const type = this.conf.ipam.type;
    let run;
    try {
      run = await this.deps.execPlugin(
        type,
        this.env.path,
        { ...this.rawEnv, CNI_COMMAND: command },
        stdin ?? JSON.stringify(this.conf.raw),
      );
    } catch (err) {
      throw cniErrorFrom(err, `cannot run IPAM plugin "${type}"`);
    }
    if (run.exitCode === 0) return run.stdout;
    let code: number = CNI_ERROR.internal;
    let msg = run.stdout.trim() || `exit code ${run.exitCode}`;
    let details: string | undefined;
    try {
      const e = JSON.parse(run.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
      if (typeof e.code === "number") code = e.code;
      if (typeof e.msg === "string") msg = e.msg;
      if (typeof e.details === "string") details = e.details;
    } catch {
      // Not an error object: keep the raw output as the message.
    }
    throw new CniError(code, `IPAM plugin "${type}": ${msg}`, details);
  }

  /** Runs an IPAM operation in this host's turn (see host-lock.ts). */
  async withIpamTurn<T>(run: () => Promise<T>): Promise<T> {
    const release = this.deps.lockIpam ? await this.deps.lockIpam() : undefined;
    try {
      return await run();
    } finally {
      await release?.();
    }
  }

  async close(): Promise<void> {
    if (!this.#datastore) return;
    try {
      await (await this.#datastore).close();
    } catch {
      // Never opened (reported already) or failed to close: nothing to release.
    }
  }
}
