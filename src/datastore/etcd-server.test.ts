import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { isErrorCode } from "../util/errors.js";
import { startEtcd } from "./etcd-server.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually(cond: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return cond();
}

describe("startEtcd", () => {
  it("starts a healthy etcd and stop removes the process and its data dir", async () => {
    const etcd = await startEtcd();
    assert.match(etcd.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(alive(etcd.pid));
    assert.ok(existsSync(etcd.dataDir));
    const health = (await (await fetch(`${etcd.endpoint}/health`)).json()) as { health: string };
    assert.equal(health.health, "true");
    await etcd.stop();
    assert.equal(alive(etcd.pid), false, "etcd is gone");
    assert.equal(existsSync(etcd.dataDir), false, "its data dir is gone");
    await etcd.stop();
  });

  it("runs several at once on different ports", async () => {
    const [a, b] = await Promise.all([startEtcd(), startEtcd()]);
    try {
      assert.notEqual(a.endpoint, b.endpoint);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("says which package to install when the binary is missing", async () => {
    await assert.rejects(
      startEtcd({ binary: "/nonexistent/etcd" }),
      (err: unknown) =>
        isErrorCode(err, "Unavailable") &&
        /install the Debian package etcd-server/.test(err.message),
    );
  });

  it("stops etcd when the signal aborts after start", async () => {
    const ac = new AbortController();
    const etcd = await startEtcd({ signal: ac.signal });
    ac.abort();
    assert.ok(await eventually(() => !alive(etcd.pid) && !existsSync(etcd.dataDir)));
  });

  it("refuses to start with an already aborted signal", async () => {
    await assert.rejects(startEtcd({ signal: AbortSignal.abort() }), (err: unknown) =>
      isErrorCode(err, "Aborted"),
    );
  });

  it("leaves nothing behind when its owner is killed with SIGKILL", async () => {
    const module = new URL("./etcd-server.js", import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { startEtcd } = await import(${JSON.stringify(module)});
         const s = await startEtcd();
         console.log(JSON.stringify({ pid: s.pid, dataDir: s.dataDir }));
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("\n")) resolve(out.split("\n")[0] ?? "");
      });
      child.once("exit", () => reject(new Error(`owner exited early: ${out}`)));
    });
    const { pid, dataDir } = JSON.parse(line) as { pid: number; dataDir: string };
    assert.ok(alive(pid));
    child.kill("SIGKILL");
    assert.ok(
      await eventually(() => !alive(pid) && !existsSync(dataDir)),
      "etcd and its dir are cleaned up",
    );
  });
});
