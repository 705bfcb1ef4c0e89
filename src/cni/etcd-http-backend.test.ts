import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { runBackendContract } from "../datastore/backend-contract.js";
import { startEtcd } from "../datastore/etcd-server.js";
import type { EtcdServer } from "../datastore/etcd-server.js";
import { isErrorCode } from "../util/errors.js";
import { EtcdHttpBackend } from "./etcd-http-backend.js";

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

runBackendContract("etcd over the JSON gateway", async () => {
  const backend = new EtcdHttpBackend({ endpoints: [etcd.endpoint] });
  return { backend, cleanup: () => backend.close() };
});

describe("EtcdHttpBackend", () => {
  it("rejects endpoints that are not http(s) URLs, and mixed schemes", () => {
    for (const endpoints of [[], ["127.0.0.1:2379"], ["ftp://x:1"], ["http://a:1", "https://b:2"]]) {
      assert.throws(
        () => new EtcdHttpBackend({ endpoints }),
        (err: unknown) => isErrorCode(err, "Invalid"),
        JSON.stringify(endpoints),
      );
    }
  });

  it("fails over to the next endpoint when one refuses connections", async () => {
    const backend = new EtcdHttpBackend({ endpoints: ["http://127.0.0.1:1", etcd.endpoint] });
    try {
      assert.equal(typeof (await backend.revision()), "number");
    } finally {
      await backend.close();
    }
  });

  it("reports Unavailable, naming the endpoint, when nothing answers", async () => {
    const backend = new EtcdHttpBackend({ endpoints: ["http://127.0.0.1:1"], timeoutMs: 300 });
    try {
      await assert.rejects(
        backend.get("/x"),
        (err: unknown) => isErrorCode(err, "Unavailable") && /127\.0\.0\.1:1/.test(err.message),
      );
    } finally {
      await backend.close();
    }
  });
});
