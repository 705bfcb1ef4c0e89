import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatCIDR, formatIP, parseCIDR, parseIP } from "../api/ip.js";
import type { CIDR } from "../api/ip.js";
import {
  addressAt,
  blockContaining,
  blockIndex,
  blocksInPool,
  candidateBlocks,
  cidrFromKeySegment,
  cidrKeySegment,
  findFreeBlock,
  hashString,
  isReserved,
  nthBlock,
  ordinalOf,
  reservedCount,
} from "./block-math.js";

const cidr = (t: string): CIDR => parseCIDR(t, { allowBareIP: true }) as CIDR;
const ip = (t: string) => {
  const a = parseIP(t);
  assert.ok(a, t);
  return a;
};

describe("block arithmetic", () => {
  const splits = [
    { pool: "10.65.0.0/16", prefix: 26, count: 1024n, nth: 3n, block: "10.65.0.192/26" },
    { pool: "10.65.0.0/24", prefix: 24, count: 1n, nth: 0n, block: "10.65.0.0/24" },
    { pool: "10.65.0.0/24", prefix: 23, count: 0n, nth: 0n, block: "" },
    { pool: "fd00:65::/48", prefix: 122, count: 1n << 74n, nth: 1n, block: "fd00:65::40/122" },
  ];
  for (const c of splits) {
    test(`a ${c.pool} pool holds ${c.count} blocks of /${c.prefix}`, () => {
      assert.equal(blocksInPool(cidr(c.pool), c.prefix), c.count);
      if (c.count > 0n) {
        const b = nthBlock(cidr(c.pool), c.prefix, c.nth);
        assert.equal(formatCIDR(b), c.block);
        assert.equal(blockIndex(cidr(c.pool), b), c.nth);
      }
    });
  }

  test("an address's block, ordinal and back", () => {
    const b = blockContaining(ip("10.65.1.77"), 26);
    assert.equal(formatCIDR(b), "10.65.1.64/26");
    assert.equal(ordinalOf(b, ip("10.65.1.77")), 13);
    assert.equal(ordinalOf(b, ip("10.65.1.128")), undefined);
    assert.equal(formatIP(4, addressAt(b, 0).value), "10.65.1.64");
    assert.equal(formatIP(4, addressAt(b, 63).value), "10.65.1.127");
  });

  test("candidate blocks cover every block size of the family", () => {
    assert.deepEqual(
      candidateBlocks(ip("10.65.1.77")).map(formatCIDR),
      Array.from({ length: 13 }, (_, i) => formatCIDR(blockContaining(ip("10.65.1.77"), 20 + i))),
    );
    assert.equal(candidateBlocks(ip("fd00::1")).length, 13);
  });

  const segments = [
    ["10.65.0.0/26", "10.65.0.0-26"],
    ["fd00:65::/122", "fd00:65::-122"],
  ] as const;
  for (const [text, segment] of segments) {
    test(`the key segment of ${text} is ${segment} and parses back`, () => {
      assert.equal(cidrKeySegment(text), segment);
      assert.equal(formatCIDR(cidrFromKeySegment(segment) as CIDR), text);
    });
  }
  test("a key segment that is not a block is refused", () => {
    for (const bad of ["10.65.0.1-26", "nonsense", "10.65.0.0-40", "10.65.0.0"]) {
      assert.equal(cidrFromKeySegment(bad), undefined, bad);
    }
  });
});

describe("reservations", () => {
  const block = cidr("10.65.0.0/26");
  const cases = [
    { reserved: [], count: 0n },
    { reserved: ["10.65.0.1"], count: 1n },
    { reserved: ["10.65.0.0/28", "10.65.0.4/30"], count: 16n },
    { reserved: ["10.65.0.0/16"], count: 64n },
    { reserved: ["10.66.0.0/16", "fd00::/64"], count: 0n },
  ];
  for (const c of cases) {
    test(`reserving ${JSON.stringify(c.reserved)} covers ${c.count} addresses of the block`, () => {
      assert.equal(reservedCount(c.reserved.map(cidr), block), c.count);
    });
  }
  test("an address inside a reserved range is reserved", () => {
    assert.equal(isReserved([cidr("10.65.0.0/30")], ip("10.65.0.3")), true);
    assert.equal(isReserved([cidr("10.65.0.0/30")], ip("10.65.0.4")), false);
  });
});

describe("findFreeBlock", () => {
  const pool = cidr("10.65.0.0/24"); // four /26 blocks
  const cases: {
    name: string;
    taken: string[];
    start: bigint;
    reserved: string[];
    want: string | undefined;
  }[] = [
    {
      name: "the start block when free",
      taken: [],
      start: 2n,
      reserved: [],
      want: "10.65.0.128/26",
    },
    {
      name: "the next one after taken blocks, wrapping around",
      taken: ["10.65.0.128/26", "10.65.0.192/26"],
      start: 2n,
      reserved: [],
      want: "10.65.0.0/26",
    },
    {
      name: "none when every block is taken",
      taken: ["10.65.0.0/26", "10.65.0.64/26", "10.65.0.128/26", "10.65.0.192/26"],
      start: 0n,
      reserved: [],
      want: undefined,
    },
    {
      name: "not a block whose every address is reserved",
      taken: [],
      start: 0n,
      reserved: ["10.65.0.0/27", "10.65.0.32/27"],
      want: "10.65.0.64/26",
    },
    {
      name: "a block with one unreserved address",
      taken: [],
      start: 0n,
      reserved: [
        "10.65.0.0/27",
        "10.65.0.32/28",
        "10.65.0.48/29",
        "10.65.0.56/30",
        "10.65.0.60/31",
        "10.65.0.62",
      ],
      want: "10.65.0.0/26",
    },
    {
      name: "past a reservation covering several blocks in one step",
      taken: [],
      start: 0n,
      reserved: ["10.65.0.0/25"],
      want: "10.65.0.128/26",
    },
    {
      name: "none when the pool is reserved",
      taken: [],
      start: 1n,
      reserved: ["10.0.0.0/8"],
      want: undefined,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = findFreeBlock({
        pool,
        blockPrefix: 26,
        taken: new Set(c.taken),
        start: c.start,
        reserved: c.reserved.map(cidr),
      });
      assert.equal(got && formatCIDR(got), c.want);
    });
  }

  test("an IPv6 /48 of 2^74 blocks is searched in a few steps", () => {
    const v6 = cidr("fd00:65::/48");
    const taken = new Set([formatCIDR(nthBlock(v6, 122, 5n)), formatCIDR(nthBlock(v6, 122, 6n))]);
    const got = findFreeBlock({
      pool: v6,
      blockPrefix: 122,
      taken,
      start: 5n,
      reserved: [cidr("fd00:65::200/119")], // blocks 8..15
    });
    assert.equal(got && formatCIDR(got), "fd00:65::1c0/122");
    const far = findFreeBlock({
      pool: v6,
      blockPrefix: 122,
      taken: new Set(),
      start: (1n << 74n) + 3n,
      reserved: [],
    });
    assert.equal(far && formatCIDR(far), "fd00:65::c0/122");
  });

  test("hosts start their search in different places, each always in the same one", () => {
    assert.equal(hashString("host-1"), hashString("host-1"));
    assert.notEqual(hashString("host-1"), hashString("host-2"));
    assert.equal(hashString(""), 0x811c9dc5);
  });
});
