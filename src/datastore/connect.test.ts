import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { kindById } from "../api/kinds.js";
import { isErrorCode } from "../util/errors.js";
import { DEFAULT_ETCD_ENDPOINT, datastoreOptionsFrom, openDatastore } from "./connect.js";
import type { DatastoreFlags } from "./connect.js";
import type { EtcdBackendOptions } from "./etcd-backend.js";
import { startEtcd } from "./etcd-server.js";
import type { EtcdServer } from "./etcd-server.js";

describe("datastoreOptionsFrom", () => {
  const cases: {
    name: string;
    flags: DatastoreFlags;
    env: Record<string, string | undefined>;
    want: EtcdBackendOptions;
  }[] = [
    {
      name: "nothing given: the local default",
      flags: {},
      env: {},
      want: { endpoints: [DEFAULT_ETCD_ENDPOINT] },
    },
    {
      name: "environment endpoints, comma-separated, trimmed",
      flags: {},
      env: { TWILL_ETCD_ENDPOINTS: "http://10.0.0.1:2379, http://10.0.0.2:2379,," },
      want: { endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"] },
    },
    {
      name: "the flag beats the environment",
      flags: { etcdEndpoints: "http://flag:2379" },
      env: { TWILL_ETCD_ENDPOINTS: "http://env:2379" },
      want: { endpoints: ["http://flag:2379"] },
    },
    {
      name: "an empty environment value counts as unset",
      flags: {},
      env: { TWILL_ETCD_ENDPOINTS: "", TWILL_ETCD_USERNAME: "" },
      want: { endpoints: [DEFAULT_ETCD_ENDPOINT] },
    },
    {
      name: "TLS files and credentials from the environment",
      flags: {},
      env: {
        TWILL_ETCD_ENDPOINTS: "https://etcd:2379",
        TWILL_ETCD_CA_CERT_FILE: "/env/ca.pem",
        TWILL_ETCD_CERT_FILE: "/env/cert.pem",
        TWILL_ETCD_KEY_FILE: "/env/key.pem",
        TWILL_ETCD_USERNAME: "env-user",
        TWILL_ETCD_PASSWORD: "env-pass",
      },
      want: {
        endpoints: ["https://etcd:2379"],
        tls: { ca: "/env/ca.pem", cert: "/env/cert.pem", key: "/env/key.pem" },
        username: "env-user",
        password: "env-pass",
      },
    },
    {
      name: "each flag beats its own variable only",
      flags: { etcdCaFile: "/flag/ca.pem", etcdUsername: "flag-user" },
      env: {
        TWILL_ETCD_ENDPOINTS: "https://etcd:2379",
        TWILL_ETCD_CA_CERT_FILE: "/env/ca.pem",
        TWILL_ETCD_CERT_FILE: "/env/cert.pem",
        TWILL_ETCD_KEY_FILE: "/env/key.pem",
        TWILL_ETCD_USERNAME: "env-user",
        TWILL_ETCD_PASSWORD: "env-pass",
      },
      want: {
        endpoints: ["https://etcd:2379"],
        tls: { ca: "/flag/ca.pem", cert: "/env/cert.pem", key: "/env/key.pem" },
        username: "flag-user",
        password: "env-pass",
      },
    },
  ];
  for (const c of cases) {
    it(`resolves ${c.name}`, () => {
      assert.deepEqual(datastoreOptionsFrom(c.flags, c.env), c.want);
    });
  }

  const invalid: { name: string; flags: DatastoreFlags; message: RegExp }[] = [
    {
      name: "an endpoint without a scheme",
      flags: { etcdEndpoints: "10.0.0.1:2379" },
      message: /invalid etcd endpoint "10.0.0.1:2379"/,
    },
    { name: "only commas", flags: { etcdEndpoints: " , " }, message: /no etcd endpoints/ },
    {
      name: "mixed schemes",
      flags: { etcdEndpoints: "http://a:1,https://b:1" },
      message: /mix http and https/,
    },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name} with Invalid`, () => {
      assert.throws(
        () => datastoreOptionsFrom(c.flags, {}),
        (err: unknown) => isErrorCode(err, "Invalid") && c.message.test(err.message),
      );
    });
  }
});

describe("openDatastore", () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  it("opens a ResourceStore on a live etcd", async () => {
    const store = await openDatastore({ endpoints: [etcd.endpoint] }, { prefix: "/connect-test" });
    try {
      await store.create({
        apiVersion: "projectcalico.org/v3",
        kind: "Tier",
        metadata: { name: "security" },
        spec: { order: 100 },
      });
      assert.deepEqual((await store.get(kindById("Tier"), "security")).spec, { order: 100 });
    } finally {
      await store.backend.close();
    }
  });

  it("fails at once with Unavailable naming the endpoints when etcd is unreachable", async () => {
    const started = Date.now();
    await assert.rejects(
      openDatastore(
        datastoreOptionsFrom({ etcdEndpoints: "http://127.0.0.1:1,http://127.0.0.1:2" }, {}),
      ),
      (err: unknown) =>
        isErrorCode(err, "Unavailable") &&
        err.message.startsWith("cannot reach etcd at http://127.0.0.1:1, http://127.0.0.1:2: "),
    );
    assert.ok(Date.now() - started < 5000);
  });
});
