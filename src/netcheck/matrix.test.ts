// The pure parts of the connectivity checker: target text and validation,
// the matrix table, and checkMatrix's retry rule (with a fake prober).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatMatrix, parseTarget, resultOf, targetProblem, targetText } from "./matrix.js";
import type { MatrixCase, ProbeOutcome, ProbeTarget } from "./matrix.js";
import { checkMatrix } from "./netcheck.js";
import type { ProbeFn } from "./netcheck.js";

const tcp = (addr: string, port: number): ProbeTarget => ({ proto: "tcp", addr, port });

describe("targets", () => {
  it("are written protocol first, IPv6 addresses bracketed before a port", () => {
    const cases: [ProbeTarget, string][] = [
      [tcp("10.65.0.2", 8080), "tcp 10.65.0.2:8080"],
      [{ proto: "udp", addr: "fd00::2", port: 53 }, "udp [fd00::2]:53"],
      [{ proto: "icmp", addr: "fd00::2" }, "icmp fd00::2"],
      [{ ...tcp("10.65.0.2", 80), source: "10.65.0.99" }, "tcp 10.65.0.2:80 from 10.65.0.99"],
    ];
    for (const [t, text] of cases) {
      assert.equal(targetText(t), text);
      assert.deepEqual(parseTarget(text), t, text);
    }
  });

  it("are read back from text, and bad text is refused", () => {
    assert.deepEqual(parseTarget("icmp fd00::2 from fd00::9"), {
      proto: "icmp",
      addr: "fd00::2",
      source: "fd00::9",
    });
    for (const bad of [
      "tcp 10.0.0.1",
      "icmp 10.0.0.1:80",
      "sctp 10.0.0.1:1",
      "tcp [fd00::1]",
      "tcp x:y",
      "udp 10.0.0.1:99999",
    ]) {
      assert.equal(parseTarget(bad), undefined, bad);
    }
  });

  it("are checked: ports where needed, none for icmp, an address", () => {
    assert.equal(targetProblem(tcp("10.0.0.1", 1)), undefined);
    assert.equal(targetProblem({ proto: "icmp", addr: "::1" }), undefined);
    assert.match(targetProblem({ proto: "tcp", addr: "10.0.0.1" }) ?? "", /needs a port/);
    assert.match(targetProblem(tcp("10.0.0.1", 70000)) ?? "", /needs a port/);
    assert.match(targetProblem({ proto: "icmp", addr: "::1", port: 1 }) ?? "", /no port/);
    assert.match(targetProblem(tcp("host name", 1)) ?? "", /not an IP address/);
    assert.match(
      targetProblem({ proto: "sctp", addr: "10.0.0.1" } as unknown as ProbeTarget) ?? "",
      /unknown protocol/,
    );
  });
});

describe("formatMatrix", () => {
  const outcome = (target: ProbeTarget, ok: boolean, detail = ok ? "ok" : "timeout") => ({
    target,
    ok,
    detail,
  });
  const c = (from: string, target: ProbeTarget, allowed: boolean): MatrixCase => ({
    from,
    target,
    allowed,
  });

  it("draws targets down, sources across, mismatches in capitals and listed below", () => {
    const t1 = tcp("10.65.0.2", 8080);
    const t2: ProbeTarget = { proto: "icmp", addr: "10.65.0.2" };
    const results = [
      resultOf(c("twt-ab12cd-wa", t1, true), outcome(t1, true), 1),
      resultOf(c("twt-ab12cd-wa", t2, false), outcome(t2, false), 1),
      resultOf(c("twt-ab12cd-wc", t1, false), outcome(t1, true, "connected, seen as 1.2.3.4"), 3),
    ];
    assert.equal(
      formatMatrix(results),
      [
        "connectivity: 3 cases, 1 mismatch",
        "to \\ from           wa     wc",
        "tcp 10.65.0.2:8080  allow  ALLOW (want deny)",
        "icmp 10.65.0.2      deny   .",
        "mismatches:",
        "  wc -> tcp 10.65.0.2:8080: want deny, got allow: connected, seen as 1.2.3.4 (3 attempts)",
      ].join("\n"),
    );
  });

  it("takes a label function, and says so when all match", () => {
    const t = tcp("10.0.0.1", 1);
    const text = formatMatrix([resultOf(c("a", t, false), outcome(t, false), 1)], {
      label: (ns) => ns.toUpperCase(),
    });
    assert.equal(
      text,
      ["connectivity: 1 case, 0 mismatches", "to \\ from       A", "tcp 10.0.0.1:1  deny"].join(
        "\n",
      ),
    );
  });
});

describe("checkMatrix", () => {
  /** A prober whose answers flip to `finally` after `after` calls per target text. */
  function flipping(initial: boolean, after: number, final: boolean) {
    const calls: string[][] = [];
    const seen = new Map<string, number>();
    const probe: ProbeFn = async (from, targets) => {
      calls.push(targets.map((t) => `${from} ${targetText(t)}`));
      return targets.map((t): ProbeOutcome => {
        const key = `${from} ${targetText(t)}`;
        const n = (seen.get(key) ?? 0) + 1;
        seen.set(key, n);
        const ok = t.port === 2 && n > after ? final : t.port === 2 ? initial : true;
        return { target: t, ok, detail: ok ? "ok" : "no" };
      });
    };
    return { probe, calls };
  }
  const cases: MatrixCase[] = [
    { from: "a", target: tcp("10.0.0.1", 1), allowed: true },
    { from: "a", target: tcp("10.0.0.1", 2), allowed: false },
    { from: "b", target: tcp("10.0.0.1", 2), allowed: false },
  ];

  it("re-probes only the cases that do not match yet, until they do", async () => {
    const { probe, calls } = flipping(true, 2, false);
    const r = await checkMatrix(cases, { probe, attempts: 5, retryDelayMs: 1 });
    assert.deepEqual(r.mismatches, []);
    assert.deepEqual(
      r.results.map((x) => [x.matched, x.attempts]),
      [
        [true, 1],
        [true, 3],
        [true, 3],
      ],
    );
    // One call per source per round; the matching case is not probed again.
    assert.deepEqual(calls.sort(), [
      ["a tcp 10.0.0.1:1", "a tcp 10.0.0.1:2"],
      ["a tcp 10.0.0.1:2"],
      ["a tcp 10.0.0.1:2"],
      ["b tcp 10.0.0.1:2"],
      ["b tcp 10.0.0.1:2"],
      ["b tcp 10.0.0.1:2"],
    ]);
  });

  it("gives up after `attempts` and reports the last outcome of what still differs", async () => {
    const { probe, calls } = flipping(true, 99, false);
    const r = await checkMatrix(cases, { probe, attempts: 2, retryDelayMs: 1 });
    assert.equal(calls.length, 4);
    assert.deepEqual(
      r.mismatches.map((x) => [x.from, x.target.port, x.outcome.ok, x.attempts]),
      [
        ["a", 2, true, 2],
        ["b", 2, true, 2],
      ],
    );
    assert.equal(r.results.length, 3);
  });
});
