import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { acquireHostLock } from "./host-lock.js";

const uniqueName = (): string => `twill-test-lock-${randomBytes(4).toString("hex")}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A process that takes the lock `name` (prints "held"), or waits for it in the queue ("queued" first). */
function lockProcess(name: string): {
  child: ReturnType<typeof spawn>;
  printed: (line: string) => Promise<void>;
} {
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const { acquireHostLock } = await import(${JSON.stringify(new URL("./host-lock.js", import.meta.url).href)});
       await acquireHostLock({ name: ${JSON.stringify(name)}, onQueued: () => console.log("queued") });
       console.log("held");
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  const printed = (line: string) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (out.split("\n").includes(line)) {
          child.stdout?.off("data", check);
          resolve();
        }
      };
      child.stdout?.on("data", check);
      check();
    });
  return { child, printed };
}

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

  it("hands the lock on in the order the waiters came", async () => {
    const name = uniqueName();
    const first = await acquireHostLock({ name });
    assert.ok(first);
    const order: number[] = [];
    const waiters: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) {
      let queued!: () => void;
      const inQueue = new Promise<void>((resolve) => (queued = resolve));
      waiters.push(
        (async () => {
          const release = await acquireHostLock({ name, onQueued: () => queued() });
          order.push(i);
          await sleep(1);
          await release?.();
        })(),
      );
      await inQueue; // In the queue before the next one comes.
    }
    await first();
    await Promise.all(waiters);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("the queue survives a waiter in it and a holder being killed", async () => {
    const name = uniqueName();
    const holder = lockProcess(name);
    await holder.printed("held");
    const middle = lockProcess(name);
    await middle.printed("queued");
    let holders = 0;
    let most = 0;
    const queued: Promise<void>[] = [];
    const behind = Array.from({ length: 4 }, async () => {
      let inQueue!: () => void;
      queued.push(new Promise<void>((resolve) => (inQueue = resolve)));
      const release = await acquireHostLock({ name, timeoutMs: 20_000, onQueued: () => inQueue() });
      assert.ok(release, "acquired, not timed out");
      holders += 1;
      most = Math.max(most, holders);
      await sleep(5);
      holders -= 1;
      await release();
    });
    // The four queue up behind the middle one, then it and the holder die.
    await Promise.all(queued);
    middle.child.kill("SIGKILL");
    holder.child.kill("SIGKILL");
    await Promise.all(behind);
    assert.equal(most, 1);
  });
});
