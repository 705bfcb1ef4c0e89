import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  cidrContains,
  cidrContainsIP,
  cidrOverlaps,
  formatCIDR,
  formatIP,
  parseCIDR,
  parseIP,
} from "./ip.js";

describe("parseIP and formatIP", () => {
  const roundTrips: [string, string][] = [
    ["10.0.0.1", "10.0.0.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["::", "::"],
    ["::1", "::1"],
    ["fd00::1", "fd00::1"],
    ["FD00:0:0:0:0:0:0:1", "fd00::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8::", "2001:db8::"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
    ["::ffff:10.1.2.3", "::ffff:a01:203"],
  ];
  for (const [input, want] of roundTrips) {
    test(`${input} formats as ${want}`, () => {
      const ip = parseIP(input);
      assert.ok(ip, `${input} should parse`);
      assert.equal(formatIP(ip.family, ip.value), want);
    });
  }
  for (const bad of [
    "",
    "10.0.0",
    "10.0.0.256",
    "10.0.0.01",
    "1.2.3.4.5",
    "a.b.c.d",
    ":::",
    "1::2::3",
    "12345::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8",
    "fe80::1%eth0",
    "::ffff:1.2.3",
  ]) {
    test(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseIP(bad), undefined));
  }
});

describe("parseCIDR", () => {
  test("normalises the network and notes host bits", () => {
    const c = parseCIDR("10.0.0.7/24");
    assert.ok(c);
    assert.equal(formatCIDR(c), "10.0.0.0/24");
    assert.equal(c.hostBitsSet, true);
    assert.equal(parseCIDR("10.0.0.0/24")?.hostBitsSet, false);
  });
  test("bare addresses only when allowed", () => {
    assert.equal(parseCIDR("10.0.0.1"), undefined);
    assert.equal(parseCIDR("10.0.0.1", { allowBareIP: true })?.prefixLength, 32);
    assert.equal(parseCIDR("fd00::1", { allowBareIP: true })?.prefixLength, 128);
  });
  test("rejects bad prefix lengths", () => {
    for (const bad of ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "fd00::/129", "10.0.0.0/8/8"]) {
      assert.equal(parseCIDR(bad), undefined, bad);
    }
  });
  test("containment and overlap", () => {
    const pool = parseCIDR("10.65.0.0/16")!;
    const block = parseCIDR("10.65.3.64/26")!;
    const other = parseCIDR("10.66.0.0/16")!;
    const v6 = parseCIDR("fd00::/64")!;
    assert.equal(cidrContains(pool, block), true);
    assert.equal(cidrContains(block, pool), false);
    assert.equal(cidrOverlaps(block, pool), true);
    assert.equal(cidrOverlaps(pool, other), false);
    assert.equal(cidrOverlaps(pool, v6), false);
    assert.equal(cidrContainsIP(block, parseIP("10.65.3.100")!), true);
    assert.equal(cidrContainsIP(block, parseIP("10.65.3.128")!), false);
    assert.equal(cidrContainsIP(v6, parseIP("fd00::5")!), true);
  });
});
