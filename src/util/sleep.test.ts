import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep } from "./sleep.js";

test("sleep resolves after the delay, or at once when aborted, and never rejects", async () => {
  await sleep(1);
  const ac = new AbortController();
  const waiting = sleep(60_000, ac.signal);
  ac.abort();
  await waiting;
  await sleep(60_000, ac.signal); // already aborted: at once
  assert.ok(true);
});
