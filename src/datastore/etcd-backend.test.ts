import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
import { Etcd3 } from "etcd3";
import type { Server, Socket } from "node:net";
import type { WatchEvent } from "./backend.js";
import { after, before, describe, it } from "node:test";
import { isErrorCode } from "../util/errors.js";
import { runBackendContract } from "./backend-contract.js";
import { EtcdBackend, checkEndpoints, reasonOf } from "./etcd-backend.js";
import { startEtcd } from "./etcd-server.js";
import type { EtcdServer } from "./etcd-server.js";

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

runBackendContract("etcd", async () => {
  const backend = new EtcdBackend({ endpoints: [etcd.endpoint] });
  return { backend, cleanup: () => backend.close() };
});

runBackendContract("etcd over its unix socket", async () => {
  const backend = new EtcdBackend({ endpoints: [etcd.socketEndpoint] });
  return { backend, cleanup: () => backend.close() };
});

/** A TCP proxy to etcd whose connections can be cut, to break watch streams on demand. */
async function startProxy(
  target: string,
): Promise<{ endpoint: string; cut(): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  const cut = (): void => {
    for (const s of sockets) s.destroy();
  };
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    cut,
    close: async () => {
      cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("EtcdBackend watch across connection loss", () => {
  it("resumes after the connection drops, without losing or repeating events", async () => {
    const proxy = await startProxy(etcd.endpoint);
    const watcher = new EtcdBackend({ endpoints: [proxy.endpoint] });
    const writer = new EtcdBackend({ endpoints: [etcd.endpoint] });
    const p = `/resume-${Date.now()}/`;
    try {
      const from = await writer.revision();
      const it = watcher.watch(p, { fromRevision: from })[Symbol.asyncIterator]();
      const values: string[] = [];
      const next = async (): Promise<void> => {
        const r = await it.next();
        assert.equal(r.done, false);
        const ev = r.value as WatchEvent;
        assert.equal(ev.type, "put");
        if (ev.type === "put") values.push(ev.entry.value);
      };
      await writer.txn({ compare: [], success: [{ type: "put", key: p + "k", value: "1" }] });
      await next();
      proxy.cut();
      for (const v of ["2", "3"]) {
        await writer.txn({ compare: [], success: [{ type: "put", key: p + "k", value: v }] });
      }
      await next();
      await next();
      proxy.cut();
      await writer.txn({ compare: [], success: [{ type: "put", key: p + "k", value: "4" }] });
      await next();
      assert.deepEqual(values, ["1", "2", "3", "4"]);
      await it.return?.();
    } finally {
      await watcher.close();
      await writer.close();
      await proxy.close();
    }
  });

  it("throws Unavailable when the connection is lost for good", async () => {
    const proxy = await startProxy(etcd.endpoint);
    const watcher = new EtcdBackend({ endpoints: [proxy.endpoint], dialTimeoutMs: 500 });
    try {
      const from = await watcher.revision();
      const it = watcher.watch("/gone/", { fromRevision: from })[Symbol.asyncIterator]();
      const pending = it.next();
      await new Promise((resolve) => setTimeout(resolve, 200));
      await proxy.close();
      await assert.rejects(
        pending,
        (err: unknown) => isErrorCode(err, "Unavailable") && /lost/.test(err.message),
      );
    } finally {
      await watcher.close();
    }
  });
});

describe("EtcdBackend failures", () => {
  it("an unreachable endpoint fails with Unavailable naming it, in under 5 s", async () => {
    const backend = new EtcdBackend({ endpoints: ["http://127.0.0.1:1"] });
    const started = Date.now();
    await assert.rejects(backend.list("/"), (err: unknown) => {
      assert.ok(isErrorCode(err, "Unavailable"), String(err));
      assert.match(err.message, /^cannot reach etcd at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    await backend.close();
  });

  it("a server that accepts but never answers fails with Unavailable within the deadline", async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    assert.ok(address && typeof address === "object");
    const endpoint = `http://127.0.0.1:${address.port}`;
    const backend = new EtcdBackend({ endpoints: [endpoint], dialTimeoutMs: 800 });
    const started = Date.now();
    try {
      for (const call of [
        () => backend.get("/k"),
        () => backend.txn({ compare: [], success: [{ type: "put", key: "/k", value: "v" }] }),
      ]) {
        await assert.rejects(call(), (err: unknown) => {
          assert.ok(isErrorCode(err, "Unavailable"), String(err));
          assert.ok(err.message.startsWith(`cannot reach etcd at ${endpoint}: `), err.message);
          return true;
        });
      }
      assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
    } finally {
      await backend.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("a watch on an unreachable endpoint throws Unavailable instead of hanging", async () => {
    const backend = new EtcdBackend({ endpoints: ["http://127.0.0.1:1"], dialTimeoutMs: 500 });
    await assert.rejects(
      (async () => {
        for await (const _ of backend.watch("/", { fromRevision: 0 })) {
          // no events expected
        }
      })(),
      (err: unknown) => isErrorCode(err, "Unavailable") && /watch on "\/" lost/.test(err.message),
    );
    await backend.close();
  });

  it("authenticates with username and password, and names a refusal", async () => {
    const secured = await startEtcd();
    const admin = new Etcd3({ hosts: secured.endpoint });
    try {
      // What `etcdctl auth enable` does for you: a root user with the root role.
      await admin.role("root").create();
      await (await admin.user("root").create("secret")).addRole("root");
      await admin.auth.authEnable({});
      const good = new EtcdBackend({
        endpoints: [secured.endpoint],
        username: "root",
        password: "secret",
      });
      const w = await good.txn({ compare: [], success: [{ type: "put", key: "/k", value: "v" }] });
      assert.equal((await good.get("/k"))?.modRevision, w.revision);
      await good.close();
      for (const creds of [{ username: "root", password: "wrong" }, {}]) {
        const bad = new EtcdBackend({ endpoints: [secured.endpoint], ...creds });
        await assert.rejects(bad.get("/k"), (err: unknown) => {
          assert.ok(isErrorCode(err, "Unavailable"), String(err));
          assert.match(err.message, new RegExp(`^etcd at ${secured.endpoint} refused access: `));
          return true;
        });
        await assert.rejects(
          (async () => {
            for await (const _ of bad.watch("/", { fromRevision: 0 })) break;
          })(),
          (err: unknown) => isErrorCode(err, "Unavailable") && /refused access/.test(err.message),
        );
        await bad.close();
      }
    } finally {
      admin.close();
      await secured.stop();
    }
  });

  it("fails over to a live endpoint among dead ones", async () => {
    const backend = new EtcdBackend({
      endpoints: ["http://127.0.0.1:1", etcd.endpoint, "http://127.0.0.1:2"],
    });
    for (let i = 0; i < 5; i++) assert.equal(typeof (await backend.revision()), "number");
    await backend.close();
  });

  const badOptions: {
    name: string;
    options: ConstructorParameters<typeof EtcdBackend>[0];
    message: RegExp;
  }[] = [
    { name: "no endpoints", options: { endpoints: [] }, message: /no etcd endpoints/ },
    {
      name: "an endpoint without a scheme",
      options: { endpoints: ["127.0.0.1:2379"] },
      message: /invalid etcd endpoint "127.0.0.1:2379"/,
    },
    {
      name: "mixed schemes",
      options: { endpoints: ["http://a:1", "https://b:1"] },
      message: /mix http and https/,
    },
    {
      name: "TLS files with an http endpoint",
      options: { endpoints: ["http://a:1"], tls: { ca: "/x" } },
      message: /not https/,
    },
    {
      name: "a missing CA file",
      options: { endpoints: ["https://a:1"], tls: { ca: "/nonexistent/ca.pem" } },
      message: /cannot read etcd CA certificate file "\/nonexistent\/ca.pem"/,
    },
    {
      name: "a certificate without a key",
      options: { endpoints: ["https://a:1"], tls: { cert: "/x" } },
      message: /certificate and key must be given together/,
    },
    {
      name: "a username without a password",
      options: { endpoints: ["http://a:1"], username: "u" },
      message: /username and password/,
    },
  ];
  for (const c of badOptions) {
    it(`rejects bad options with Invalid: ${c.name}`, () => {
      assert.throws(
        () => new EtcdBackend(c.options),
        (err: unknown) => isErrorCode(err, "Invalid") && c.message.test(err.message),
      );
    });
  }

  it("checkEndpoints accepts http and https URLs, and unix sockets by path", () => {
    checkEndpoints(["http://127.0.0.1:2379", "http://[::1]:2379"]);
    checkEndpoints(["https://etcd-0.example:2379"]);
    checkEndpoints(["unix:///run/etcd/localhost:2379"]);
    for (const bad of ["unix://", "unix:///", "unix://host/run/etcd.sock"]) {
      assert.throws(
        () => checkEndpoints([bad]),
        (err: unknown) => isErrorCode(err, "Invalid") && err.message.includes(`"${bad}"`),
      );
    }
  });

  const reasons: { name: string; error: Error; want: string }[] = [
    {
      name: "a refused connection",
      error: new Error(
        "14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ",
      ),
      want: "connect ECONNREFUSED 127.0.0.1:1",
    },
    {
      name: "a deadline",
      error: new Error("4 DEADLINE_EXCEEDED: Deadline exceeded"),
      want: "no answer within 3000 ms",
    },
    {
      name: "a TLS failure with a timestamp",
      error: new Error(
        "14 UNAVAILABLE: No connection established. Last error: unable to verify the first certificate (2026-11-26T03:34:57.906Z)",
      ),
      want: "unable to verify the first certificate",
    },
    { name: "anything else", error: new Error("13 INTERNAL: boom"), want: "boom" },
  ];
  for (const c of reasons) {
    it(`reasonOf shortens gRPC errors: ${c.name}`, () => {
      assert.equal(reasonOf(c.error, 3000), c.want);
    });
  }
});
