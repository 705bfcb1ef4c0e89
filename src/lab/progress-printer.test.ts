import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { progressPrinter } from "./progress-printer.js";

describe("progressPrinter", () => {
  it("prints one plain line per finished step when not on a terminal", () => {
    let text = "";
    const p = progressPrinter({ write: (s) => (text += s), tty: false, now: () => 0 });
    p.onProgress({ step: "network", state: "start", elapsedMs: 10 });
    p.onProgress({
      step: "network",
      state: "done",
      detail: "9 namespaces",
      elapsedMs: 250,
      stepMs: 240,
    });
    p.onProgress({ step: "etcd", state: "start", elapsedMs: 250 });
    p.onProgress({
      step: "etcd",
      state: "done",
      detail: "1 member",
      elapsedMs: 12_340,
      stepMs: 12_090,
    });
    p.stop();
    assert.equal(text, "[  0.3s] network: 9 namespaces\n[ 12.3s] etcd: 1 member\n");
  });

  it("on a terminal, rewrites a line of running steps and ends with it cleared", () => {
    let text = "";
    let clock = 1000;
    const p = progressPrinter({ write: (s) => (text += s), tty: true, now: () => clock });
    p.onProgress({ step: "etcd", state: "start", elapsedMs: 0 });
    p.onProgress({ step: "routers", state: "start", elapsedMs: 0 });
    clock = 1500;
    p.onProgress({ step: "routers", state: "done", detail: "tor1", elapsedMs: 500, stepMs: 500 });
    p.stop();
    assert.ok(text.includes("etcd, routers"), text);
    assert.ok(text.includes("✓ routers    tor1  (0.5s)\n"), text);
    assert.ok(text.endsWith("\r\x1b[K"), JSON.stringify(text));
  });
});
