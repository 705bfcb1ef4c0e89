import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CheckResult, LabCheckReport } from "./lab-check-plan.js";
import { renderCheck } from "./render-check.js";

function result(
  from: string,
  to: string,
  proto: "tcp" | "icmp",
  allowed: boolean,
  observed = allowed,
): CheckResult {
  return {
    from,
    to,
    proto,
    family: 4,
    addr: to === "w1" ? "10.65.0.1" : "10.65.0.2",
    ...(proto === "tcp" ? { port: 80 } : {}),
    allowed,
    ...(allowed ? {} : { deniedAt: "ingress" as const }),
    egress: "profile kns.default rule 0 (Allow)",
    ingress: allowed ? "profile kns.default rule 0 (Allow)" : "default/iso rule 0 (Deny)",
    observed,
    matched: observed === allowed,
    detail: observed ? "connected, seen as 10.65.0.1" : "no connection within 1000 ms",
    attempts: observed === allowed ? 1 : 6,
  };
}

function report(results: CheckResult[]): LabCheckReport {
  return {
    lab: "demo",
    port: 80,
    families: [4],
    revision: 42,
    policies: ["GlobalNetworkPolicy iso"],
    workloads: [
      { name: "w1", host: "h1", labels: { tenant: "a", "projectcalico.org/namespace": "default" } },
      { name: "w2", host: "h2", labels: { tenant: "b" } },
    ],
    results,
    mismatches: results.filter((r) => !r.matched).length,
  };
}

describe("renderCheck", () => {
  it("draws the grid, sources down and destinations across, tcp then ping in a cell", () => {
    const text = renderCheck(
      report([
        result("w1", "w2", "tcp", false),
        result("w1", "w2", "icmp", true),
        result("w2", "w1", "tcp", true),
        result("w2", "w1", "icmp", true),
      ]),
    );
    assert.equal(
      text,
      [
        'Lab "demo": tcp/80 and ping between 2 workloads',
        "policy in force (datastore revision 42): GlobalNetworkPolicy iso",
        "each cell: tcp ping, as probed: ✓ got through, ✗ blocked, ! not what the policy says",
        "",
        "from \\ to     w1    w2",
        "w1  tenant=a  ·     ✗ ✓",
        "w2  tenant=b  ✓ ✓   ·",
        "",
        "✓ all 4 probes are as the policy says",
        "",
      ].join("\n"),
    );
  });

  it("marks and lists what is not as the policy says, with why policy says so", () => {
    const text = renderCheck(
      report([
        result("w1", "w2", "tcp", false, true),
        result("w1", "w2", "icmp", true),
        result("w2", "w1", "tcp", true, false),
        result("w2", "w1", "icmp", true),
      ]),
    );
    assert.match(text, /^w1 {2}tenant=a {2}· {5}✓!✓$/m);
    assert.match(text, /^w2 {2}tenant=b {2}✗!✓ {3}·$/m);
    assert.match(text, /✗ 2 of 4 probes are not as the policy says:\n/);
    assert.ok(
      text.includes(
        "\n  w1 → w2  tcp 10.65.0.2:80: policy says deny (ingress: default/iso rule 0 (Deny)); probe: got through (connected, seen as 10.65.0.1) after 6 attempts\n",
      ),
      text,
    );
  });

  it("colours only on request, and the colours do not shift the columns", () => {
    const r = report([result("w1", "w2", "tcp", true), result("w1", "w2", "icmp", false, true)]);
    const plain = renderCheck(r);
    const coloured = renderCheck(r, { color: true });
    const ESC = "\x1b";
    assert.ok(!plain.includes(ESC));
    assert.ok(coloured.includes(`${ESC}[32m✓${ESC}[0m`));
    assert.ok(coloured.includes(`${ESC}[1;7;31m✓!${ESC}[0m`));
    assert.equal(
      coloured
        .split(ESC)
        .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, "")))
        .join(""),
      plain,
    );
  });

  it("says when no policy is in force", () => {
    const r = { ...report([]), policies: [] };
    assert.match(renderCheck(r), /policy in force \(datastore revision 42\): none/);
  });
});
