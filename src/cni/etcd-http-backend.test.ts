import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
    for (const endpoints of [
      [],
      ["127.0.0.1:2379"],
      ["ftp://x:1"],
      ["http://a:1", "https://b:2"],
    ]) {
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

  it("talks to etcd through a unix socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), "twill-etcd-sock-"));
    const path = join(dir, "etcd.sock");
    const { hostname, port } = new URL(etcd.endpoint);
    const proxy = createServer((c) => {
      const u = createConnection(Number(port), hostname);
      c.on("error", () => u.destroy());
      u.on("error", () => c.destroy());
      c.pipe(u).pipe(c);
    });
    await new Promise<void>((resolve) => proxy.listen(path, resolve));
    const backend = new EtcdHttpBackend({ endpoints: [`unix://${path}`] });
    try {
      const put = await backend.txn({
        compare: [],
        success: [{ type: "put", key: "/sock/k", value: "v" }],
      });
      assert.equal((await backend.get("/sock/k"))?.modRevision, put.revision);
    } finally {
      await backend.close();
      await new Promise((resolve) => proxy.close(resolve));
      await rm(dir, { recursive: true, force: true });
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
