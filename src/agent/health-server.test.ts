import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { startHealthServer } from "./health-server.js";

describe("health server", () => {
  it("answers /livez, /readyz and /metrics, and nothing else", async () => {
    let ready = false;
    const server = await startHealthServer(
      {
        live: () => ({ ok: true, detail: { syncStatus: "in-sync" } }),
        ready: () => ({ ok: ready, detail: { firstApplyDone: ready } }),
        metrics: async () => ({ contentType: "text/plain; version=0.0.4", body: "twill_up 1\n" }),
      },
      { host: "127.0.0.1", port: 0, logger: pino({ level: "silent" }) },
    );
    const get = async (path: string, method = "GET") => {
      const r = await fetch(`http://127.0.0.1:${server.port}${path}`, { method });
      return [r.status, await r.text()] as const;
    };
    try {
      assert.deepEqual(await get("/livez"), [200, '{"ok":true,"syncStatus":"in-sync"}\n']);
      assert.deepEqual(await get("/readyz"), [503, '{"ok":false,"firstApplyDone":false}\n']);
      ready = true;
      assert.equal((await get("/readyz?verbose"))[0], 200);
      assert.deepEqual(await get("/metrics"), [200, "twill_up 1\n"]);
      assert.equal((await get("/other"))[0], 404);
      assert.equal((await get("/livez", "POST"))[0], 405);
    } finally {
      await server.close();
    }
  });

  it("says which address it could not listen on", async () => {
    const first = await startHealthServer(
      {
        live: () => ({ ok: true, detail: {} }),
        ready: () => ({ ok: true, detail: {} }),
        metrics: async () => ({ contentType: "", body: "" }),
      },
      { host: "127.0.0.1", port: 0, logger: pino({ level: "silent" }) },
    );
    try {
      await assert.rejects(
        startHealthServer(
          {
            live: () => ({ ok: true, detail: {} }),
            ready: () => ({ ok: true, detail: {} }),
            metrics: async () => ({ contentType: "", body: "" }),
          },
          { host: "127.0.0.1", port: first.port, logger: pino({ level: "silent" }) },
        ),
        new RegExp(`cannot serve health and metrics on 127.0.0.1:${first.port}`),
      );
    } finally {
      await first.close();
    }
  });
});
