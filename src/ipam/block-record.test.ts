import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseCIDR } from "../api/ip.js";
import type { CIDR } from "../api/ip.js";
import { isErrorCode } from "../util/errors.js";
import {
  allocateNext,
  allocatedCount,
  allocationsOf,
  assignAddress,
  freeCount,
  isEmpty,
  newBlock,
  ordinalsOfHandle,
  parseBlock,
  releaseOrdinals,
} from "./block-record.js";
import type { BlockRecord } from "./block-record.js";

const cidr = (t: string): CIDR => parseCIDR(t, { allowBareIP: true }) as CIDR;
const NOW = "2024-05-01T10:00:00.000Z";
const alloc = (handle: string) => ({ handle, attributes: { node: "host-1" }, now: NOW });

function fresh(text = "10.65.0.0/29"): BlockRecord {
  return newBlock(cidr(text), { affinity: "host-1", sequence: 100, now: NOW });
}

function fill(
  block: BlockRecord,
  n: number,
  reserved: CIDR[] = [],
): { block: BlockRecord; ips: string[] } {
  const ips: string[] = [];
  let b = block;
  for (let i = 0; i < n; i++) {
    const got = allocateNext(b, reserved, alloc(`h${i}`));
    assert.ok(got);
    b = got.block;
    ips.push(got.ip);
  }
  return { block: b, ips };
}

describe("block records", () => {
  test("a new block has every ordinal free, in order", () => {
    const b = fresh();
    assert.deepEqual(b.unallocated, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(isEmpty(b), true);
    assert.equal(freeCount(b, []), 8);
  });

  test("every address is handed out, the block's first and last included (as Calico)", () => {
    const { block, ips } = fill(fresh(), 8);
    assert.deepEqual(ips, [
      "10.65.0.0",
      "10.65.0.1",
      "10.65.0.2",
      "10.65.0.3",
      "10.65.0.4",
      "10.65.0.5",
      "10.65.0.6",
      "10.65.0.7",
    ]);
    assert.equal(allocateNext(block, [], alloc("x")), undefined);
    assert.equal(allocatedCount(block), 8);
  });

  test("reserved addresses are never auto-assigned", () => {
    const reserved = [cidr("10.65.0.0/30"), cidr("10.65.0.6")];
    const { block, ips } = fill(fresh(), 3, reserved);
    assert.deepEqual(ips, ["10.65.0.4", "10.65.0.5", "10.65.0.7"]);
    assert.equal(allocateNext(block, reserved, alloc("x")), undefined);
    assert.equal(freeCount(block, reserved), 0);
    assert.equal(freeCount(block, []), 5);
  });

  test("each write bumps the sequence, and an allocation records it", () => {
    const { block } = fill(fresh(), 2);
    assert.equal(block.sequence, 102);
    assert.deepEqual(
      allocationsOf(block).map((a) => [a.ip, a.record.handle, a.record.sequence]),
      [
        ["10.65.0.0", "h0", 101],
        ["10.65.0.1", "h1", 102],
      ],
    );
  });

  test("the input record is never modified", () => {
    const b = fresh();
    const copy = structuredClone(b);
    fill(b, 3);
    releaseOrdinals(fill(b, 1).block, [{ ordinal: 0 }], NOW);
    assert.deepEqual(b, copy);
  });

  test("a released address goes to the back of the queue", () => {
    const { block } = fill(fresh(), 2);
    const { block: released } = releaseOrdinals(block, [{ ordinal: 0 }], NOW);
    assert.ok(released);
    assert.deepEqual(released.unallocated, [2, 3, 4, 5, 6, 7, 0]);
    const next = allocateNext(released, [], alloc("again"));
    assert.equal(next?.ip, "10.65.0.2");
  });

  const releases: {
    name: string;
    request: { ordinal: number; handle?: string; sequence?: number };
    status: string;
  }[] = [
    { name: "by ordinal", request: { ordinal: 1 }, status: "released" },
    { name: "with its handle", request: { ordinal: 1, handle: "h1" }, status: "released" },
    { name: "with its sequence", request: { ordinal: 1, sequence: 102 }, status: "released" },
    { name: "with another handle", request: { ordinal: 1, handle: "h0" }, status: "mismatch" },
    { name: "with an older sequence", request: { ordinal: 1, sequence: 99 }, status: "mismatch" },
    { name: "of a free address", request: { ordinal: 5 }, status: "notAllocated" },
  ];
  for (const c of releases) {
    test(`release ${c.name}: ${c.status}`, () => {
      const { block } = fill(fresh(), 2);
      const { block: next, outcomes } = releaseOrdinals(block, [c.request], NOW);
      assert.equal(outcomes[0]?.status, c.status);
      assert.equal(next !== undefined, c.status === "released");
    });
  }

  test("releasing one address twice in a request counts once", () => {
    const { block } = fill(fresh(), 1);
    const { block: next, outcomes } = releaseOrdinals(block, [{ ordinal: 0 }, { ordinal: 0 }], NOW);
    assert.equal(outcomes.length, 1);
    assert.deepEqual(next?.unallocated, [1, 2, 3, 4, 5, 6, 7, 0]);
  });

  test("assigning a given address takes it out of the queue; a held one names its holder", () => {
    const b = fresh();
    const got = assignAddress(b, parseIP4("10.65.0.5"), alloc("static"));
    assert.ok("block" in got);
    assert.deepEqual(got.block.unallocated, [0, 1, 2, 3, 4, 6, 7]);
    assert.deepEqual(ordinalsOfHandle(got.block, "static"), [5]);
    const again = assignAddress(got.block, parseIP4("10.65.0.5"), alloc("other"));
    assert.ok("heldBy" in again);
    assert.equal(again.heldBy.handle, "static");
  });

  test("a stored block parses back", () => {
    const { block } = fill(fresh(), 3);
    assert.deepEqual(parseBlock(JSON.stringify(block), "k"), block);
  });

  const corrupt: { name: string; edit: (b: Record<string, unknown>) => void }[] = [
    {
      name: "an ordinal both free and allocated",
      edit: (b) => (b["unallocated"] = [0, 3, 4, 5, 6, 7]),
    },
    { name: "a missing ordinal", edit: (b) => (b["unallocated"] = [4, 5, 6, 7]) },
    { name: "an ordinal listed twice", edit: (b) => (b["unallocated"] = [3, 3, 4, 5, 6, 7]) },
    { name: "an ordinal out of range", edit: (b) => (b["unallocated"] = [3, 4, 5, 6, 7, 8]) },
    { name: "a bad cidr", edit: (b) => (b["cidr"] = "10.65.0.1/29") },
    {
      name: "a bad allocation",
      edit: (b) => ((b["allocations"] as Record<string, unknown>)["0"] = { handle: 1 }),
    },
    { name: "a bad affinity", edit: (b) => (b["affinity"] = 7) },
  ];
  for (const c of corrupt) {
    test(`a stored block with ${c.name} is refused, naming the key`, () => {
      const { block } = fill(fresh(), 3);
      const raw = structuredClone(block) as unknown as Record<string, unknown>;
      c.edit(raw);
      assert.throws(
        () => parseBlock(JSON.stringify(raw), "/twill/v1/ipam/blocks/x"),
        (err: unknown) =>
          isErrorCode(err, "Internal") && err.message.includes("/twill/v1/ipam/blocks/x"),
      );
    });
  }

  test("a block larger than 4096 addresses is refused", () => {
    assert.throws(
      () => newBlock(cidr("10.0.0.0/19"), { affinity: null, sequence: 1, now: NOW }),
      /4096/,
    );
  });
});

function parseIP4(text: string) {
  const c = cidr(text);
  return { family: c.family, value: c.network };
}
