import { test } from "node:test";
import assert from "node:assert/strict";
import { formatTable } from "./format-table.js";

const cases: { name: string; headers: string[]; rows: string[][]; want: string }[] = [
  {
    name: "pads every column but the last to its widest cell",
    headers: ["name", "order", "selector"],
    rows: [
      ["allow-dns", "100", "all()"],
      ["x", "5", "app == 'web'"],
    ],
    want: "NAME        ORDER   SELECTOR\nallow-dns   100     all()\nx           5       app == 'web'\n",
  },
  {
    name: "header alone when there are no rows",
    headers: ["NAME", "CIDR"],
    rows: [],
    want: "NAME   CIDR\n",
  },
  {
    name: "missing cells are blank and trailing blanks are trimmed",
    headers: ["NAME", "ASN", "IPV4"],
    rows: [["node-1"], ["n2", "64512", ""]],
    want: "NAME     ASN     IPV4\nnode-1\nn2       64512\n",
  },
  {
    name: "newlines and tabs inside a cell become spaces",
    headers: ["NAME", "NOTE"],
    rows: [["a", "x\ny\tz"]],
    want: "NAME   NOTE\na      x y z\n",
  },
];

for (const c of cases) {
  test(`formatTable: ${c.name}`, () => {
    assert.equal(formatTable(c.headers, c.rows), c.want);
  });
}
