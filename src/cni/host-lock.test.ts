import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { acquireHostLock } from "./host-lock.js";

const uniqueName = (): string => `twill-test-lock-${randomBytes(4).toString("hex")}`;

describe("acquireHostLock", () => {
  it("lets one holder in at a time, and the next in when it releases", async () => {
    const name = uniqueName();
    const order: string[] = [];
    const first = await acquireHostLock({ name });
    assert.ok(first);
    const second = (async () => {
      const release = await acquireHostLock({ name });
      order.push("second acquired");
      await release?.();
    })();
    await new Promise((resolve) => setTimeout(resolve, 50));
    order.push("first releasing");
    await first();
    await second;
    assert.deepEqual(order, ["first releasing", "second acquired"]);
  });

  it("serialises many waiters: never two holders at once", async () => {
    const name = uniqueName();
    let holders = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const release = await acquireHostLock({ name });
        holders += 1;
        most = Math.max(most, holders);
        await new Promise((resolve) => setTimeout(resolve, 2));
        holders -= 1;
        await release?.();
      }),
    );
    assert.equal(most, 1);
  });

  it("is freed by the kernel when its holder dies, however it dies", async () => {
    const name = uniqueName();
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { acquireHostLock } = await import(${JSON.stringify(new URL("./host-lock.js", import.meta.url).href)});
         await acquireHostLock({ name: ${JSON.stringify(name)} });
         console.log("held");
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    const waiting = acquireHostLock({ name });
    child.kill("SIGKILL");
    const release = await waiting;
    assert.ok(release, "acquired after the holder was killed");
    await release();
  });

  it("gives up after its timeout and returns undefined", async () => {
    const name = uniqueName();
    const held = await acquireHostLock({ name });
    const started = Date.now();
    assert.equal(await acquireHostLock({ name, timeoutMs: 100 }), undefined);
    assert.ok(Date.now() - started >= 90);
    await held?.();
  });
});
