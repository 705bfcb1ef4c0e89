import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routeFor, uncovered } from "./route-coverage.js";
import type { KernelRoute } from "./route-coverage.js";

// As `ip -j route show` prints a host's table in a lab.
const table: KernelRoute[] = [
  { dst: "default", gateway: "10.1.1.1", dev: "fab0" },
  { dst: "10.1.1.0/24", dev: "fab0", protocol: "kernel" },
  { dst: "10.65.100.128", dev: "tw9580aab9bd1", protocol: "116" },
  { dst: "10.65.100.128/26", type: "blackhole", protocol: "bird" },
  { dst: "10.65.155.0/26", gateway: "10.1.1.13", dev: "fab0", protocol: "bird" },
  { dst: "fd00:65::/122", type: "unreachable", protocol: "bird" },
];

describe("route coverage", () => {
  it("takes the most specific route, never the default", () => {
    assert.equal(routeFor(table, "10.65.100.128")?.dev, "tw9580aab9bd1");
    assert.equal(routeFor(table, "10.65.155.7")?.gateway, "10.1.1.13");
    assert.equal(routeFor(table, "10.65.9.9"), undefined);
    assert.equal(routeFor(table, "not an address"), undefined);
  });

  it("counts addresses behind a blackhole, unreachable or only the default route as uncovered", () => {
    assert.deepEqual(
      uncovered(table, [
        "10.65.100.128",
        "10.65.100.130",
        "10.65.155.1",
        "10.65.9.9",
        "fd00:65::5",
      ]),
      ["10.65.100.130", "10.65.9.9", "fd00:65::5"],
    );
  });
});
