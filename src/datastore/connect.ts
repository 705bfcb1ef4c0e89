// From CLI flags and environment to an open ResourceStore on etcd.
//
// Precedence for each setting: flag > environment > default. Endpoints are a
// comma-separated list (several = one cluster); the default is the local
// etcd at http://127.0.0.1:2379. TLS settings are PEM file paths.
//
//   flag               environment                default
//   --etcd-endpoints   TWILL_ETCD_ENDPOINTS       http://127.0.0.1:2379
//   --etcd-ca-cert-file     TWILL_ETCD_CA_CERT_FILE    (none)
//   --etcd-cert-file   TWILL_ETCD_CERT_FILE       (none)
//   --etcd-key-file    TWILL_ETCD_KEY_FILE        (none)
//   --etcd-username    TWILL_ETCD_USERNAME        (none)
//   --etcd-password    TWILL_ETCD_PASSWORD        (none)
//
// An empty value counts as not given, so `TWILL_ETCD_ENDPOINTS=` falls back
// to the default rather than to no endpoints at all.

import { EtcdBackend, checkEndpoints } from "./etcd-backend.js";
import type { EtcdBackendOptions } from "./etcd-backend.js";
import { ResourceStore } from "./resource-store.js";
import type { ResourceStoreOptions } from "./resource-store.js";

export const DEFAULT_ETCD_ENDPOINT = "http://127.0.0.1:2379";

export interface DatastoreFlags {
  etcdEndpoints?: string;
  etcdCaFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  etcdUsername?: string;
  etcdPassword?: string;
}

/** Resolve EtcdBackend options from flags and environment; throws TwillError "Invalid". */
export function datastoreOptionsFrom(
  flags: DatastoreFlags,
  env: Record<string, string | undefined>,
): EtcdBackendOptions {
  const pick = (flag: string | undefined, name: string): string | undefined => {
    if (flag !== undefined && flag !== "") return flag;
    const value = env[name];
    return value !== undefined && value !== "" ? value : undefined;
  };
  const endpointList = pick(flags.etcdEndpoints, "TWILL_ETCD_ENDPOINTS") ?? DEFAULT_ETCD_ENDPOINT;
  const endpoints = endpointList
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  checkEndpoints(endpoints);
  const options: EtcdBackendOptions = { endpoints };

  const tls: NonNullable<EtcdBackendOptions["tls"]> = {};
  const ca = pick(flags.etcdCaFile, "TWILL_ETCD_CA_CERT_FILE");
  const cert = pick(flags.etcdCertFile, "TWILL_ETCD_CERT_FILE");
  const key = pick(flags.etcdKeyFile, "TWILL_ETCD_KEY_FILE");
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  if (Object.keys(tls).length > 0) options.tls = tls;

  const username = pick(flags.etcdUsername, "TWILL_ETCD_USERNAME");
  const password = pick(flags.etcdPassword, "TWILL_ETCD_PASSWORD");
  if (username !== undefined) options.username = username;
  if (password !== undefined) options.password = password;
  return options;
}

/**
 * Connect to etcd and check that it answers, so an unreachable datastore is
 * reported here (TwillError "Unavailable", naming the endpoints) rather than
 * at the first real request.
 */
export async function openDatastore(
  options: EtcdBackendOptions,
  storeOptions: ResourceStoreOptions = {},
): Promise<ResourceStore> {
  const backend = new EtcdBackend(options);
  try {
    await backend.revision();
  } catch (err) {
    await backend.close();
    throw err;
  }
  return new ResourceStore(backend, storeOptions);
}
