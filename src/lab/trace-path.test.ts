import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planLab, resolveLabOptions } from "./topology.js";
import { addressBook, annotateTrace, parseTraceroute, pathLine } from "./trace-path.js";

const plan = planLab(resolveLabOptions({ name: "demo" }));
const workloads = [
  {
    name: "h1w1",
    ns: "twl-demo-h1w1",
    host: "h1",
    labels: {},
    containerId: "x",
    ipv4: "10.65.0.1",
  },
  {
    name: "h4w2",
    ns: "twl-demo-h4w2",
    host: "h4",
    labels: {},
    containerId: "y",
    ipv4: "10.65.54.65",
  },
];
const output = `traceroute to 10.65.54.65 (10.65.54.65), 16 hops max, 60 byte packets
 1  10.1.1.11  0.205 ms
 2  10.1.1.1  0.204 ms
 3  10.1.101.1  0.018 ms
 4  *
 5  10.1.2.12  0.134 ms
 6  10.65.54.65  0.040 ms
`;

describe("trace-path", () => {
  const book = addressBook(plan, workloads);

  it("knows every machine by its addresses (bridges, veths, workloads)", () => {
    assert.deepEqual(book.get("10.1.1.11"), { name: "h1", role: "host" });
    assert.deepEqual(book.get("10.1.1.1"), { name: "tor1", role: "tor" });
    assert.deepEqual(book.get("10.1.101.1"), { name: "spine1", role: "spine" });
    assert.deepEqual(book.get("10.1.102.2"), { name: "tor2", role: "tor" });
    assert.deepEqual(book.get("10.1.200.10"), { name: "plain1", role: "plain" });
    assert.deepEqual(book.get("10.65.54.65"), { name: "h4w2", role: "workload" });
  });

  it("reads traceroute's hops, names them, and draws the path", () => {
    const hops = parseTraceroute(output);
    assert.deepEqual(
      hops.map((h) => [h.ttl, h.addr, h.rtt]),
      [
        [1, "10.1.1.11", "0.205 ms"],
        [2, "10.1.1.1", "0.204 ms"],
        [3, "10.1.101.1", "0.018 ms"],
        [4, undefined, ""],
        [5, "10.1.2.12", "0.134 ms"],
        [6, "10.65.54.65", "0.040 ms"],
      ],
    );
    assert.deepEqual(annotateTrace(hops, book), [
      " 1  10.1.1.11    0.205 ms  h1      host",
      " 2  10.1.1.1     0.204 ms  tor1    ToR router",
      " 3  10.1.101.1   0.018 ms  spine1  spine router",
      " 4  *                      (no answer)",
      " 5  10.1.2.12    0.134 ms  h4      host",
      " 6  10.65.54.65  0.040 ms  h4w2    workload",
    ]);
    assert.equal(pathLine("h1w1", hops, book), "h1w1 → h1 → tor1 → spine1 → ? → h4 → h4w2");
  });
});
