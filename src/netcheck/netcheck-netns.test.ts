// The prober and responder for real, as root, between two namespaces of
// our own joined by a veth (nothing touches the machine's namespace):
//
//   a: pa 10.9.0.1/24 fd09::1/64 ◄─veth─► pb 10.9.0.2/24 10.9.0.3/24 fd09::2/64 :b
//                                          responder tcp 8080 9090, udp 5353
//                                          nft: drop tcp 9090, drop icmp to 10.9.0.3
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NetnsPool, netnsUnavailable } from "../dataplane/netns-testkit.js";
import type { Netns } from "../dataplane/netns-testkit.js";
import { checkMatrix, formatMatrix, probeFrom, startResponder } from "./netcheck.js";
import type { ProbeTarget, ResponderHandle } from "./netcheck.js";

const why = netnsUnavailable();

describe("netcheck between two namespaces", { skip: why, timeout: 60_000 }, () => {
  const pool = new NetnsPool();
  let a: Netns;
  let b: Netns;
  let responder: ResponderHandle | undefined;

  before(async () => {
    a = await pool.create("a");
    b = await pool.create("b");
    await pool.veth(a, "pa", b, "pb");
    await a.sh("ip", "addr", "add", "10.9.0.1/24", "dev", "pa");
    await a.sh("ip", "addr", "add", "fd09::1/64", "dev", "pa", "nodad");
    await b.sh("ip", "addr", "add", "10.9.0.2/24", "dev", "pb");
    await b.sh("ip", "addr", "add", "10.9.0.3/24", "dev", "pb");
    await b.sh("ip", "addr", "add", "fd09::2/64", "dev", "pb", "nodad");
    await a.sh("ip", "link", "set", "pa", "up");
    await b.sh("ip", "link", "set", "pb", "up");
    await b.run("nft", ["-f", "-"], {
      input: `table inet t {
        chain input {
          type filter hook input priority filter; policy accept;
          tcp dport 9090 drop
          ip daddr 10.9.0.3 icmp type echo-request drop
        }
      }\n`,
    });
    responder = await startResponder(b.name, { tcpPorts: [8080, 9090], udpPorts: [5353] });
  });

  after(async () => {
    await responder?.stop();
    await pool.cleanup();
  });

  it("probes TCP, UDP and ICMP over IPv4 and IPv6 at once, and says who the far end saw", async () => {
    const targets: ProbeTarget[] = [
      { proto: "tcp", addr: "10.9.0.2", port: 8080 },
      { proto: "tcp", addr: "fd09::2", port: 8080 },
      { proto: "udp", addr: "10.9.0.2", port: 5353 },
      { proto: "udp", addr: "10.9.0.3", port: 5353 }, // the reply must leave from .3
      { proto: "udp", addr: "fd09::2", port: 5353 },
      { proto: "icmp", addr: "10.9.0.2" },
      { proto: "icmp", addr: "fd09::2" },
      { proto: "tcp", addr: "10.9.0.2", port: 9090 }, // dropped
      { proto: "tcp", addr: "10.9.0.2", port: 7070 }, // nobody listens
      { proto: "udp", addr: "10.9.0.2", port: 5354 }, // nobody listens
      { proto: "icmp", addr: "10.9.0.3" }, // dropped
      { proto: "tcp", addr: "10.9.0.2" }, // invalid: no port
    ];
    const out = await probeFrom(a.name, targets, { timeoutMs: 800 });
    assert.deepEqual(
      out.map((o) => o.target),
      targets,
    );
    assert.deepEqual(
      out.map((o) => o.ok),
      [true, true, true, true, true, true, true, false, false, false, false, false],
      JSON.stringify(out, null, 1),
    );
    assert.deepEqual(
      out.slice(0, 5).map((o) => o.seenAs),
      ["10.9.0.1", "fd09::1", "10.9.0.1", "10.9.0.1", "fd09::1"],
    );
    assert.match(out[7]!.detail, /no connection within 800 ms/);
    assert.equal(out[8]!.detail, "refused");
    assert.equal(out[9]!.detail, "refused");
    assert.match(out[10]!.detail, /no echo reply/);
    assert.match(out[11]!.detail, /invalid: tcp needs a port/);
  });

  it("sends from a given source address, and enters a namespace given as a path", async () => {
    await a.sh("ip", "addr", "add", "10.9.0.11/24", "dev", "pa");
    const out = await probeFrom(`/var/run/netns/${a.name}`, [
      { proto: "tcp", addr: "10.9.0.2", port: 8080, source: "10.9.0.11" },
      { proto: "udp", addr: "10.9.0.2", port: 5353, source: "10.9.0.11" },
      { proto: "icmp", addr: "10.9.0.2", source: "10.9.0.11" },
      { proto: "tcp", addr: "10.9.0.2", port: 8080, source: "10.9.0.77" },
    ]);
    assert.deepEqual(
      out.map((o) => [o.ok, o.seenAs]),
      [
        [true, "10.9.0.11"],
        [true, "10.9.0.11"],
        [true, undefined],
        [false, undefined],
      ],
    );
    assert.match(out[3]!.detail, /EADDRNOTAVAIL/);
  });

  it("checkMatrix: every case matches as expected, and the table says so", async () => {
    const report = await checkMatrix(
      [
        { from: a.name, target: { proto: "tcp", addr: "10.9.0.2", port: 8080 }, allowed: true },
        { from: a.name, target: { proto: "tcp", addr: "10.9.0.2", port: 9090 }, allowed: false },
        { from: b.name, target: { proto: "icmp", addr: "10.9.0.1" }, allowed: true },
        { from: b.name, target: { proto: "udp", addr: "fd09::1", port: 5353 }, allowed: false },
      ],
      { attempts: 2, retryDelayMs: 50, timeoutMs: 500 },
    );
    assert.deepEqual(report.mismatches, [], formatMatrix(report.results));
    assert.match(formatMatrix(report.results), /^connectivity: 4 cases, 0 mismatches\n/);
  });

  it("a second responder on a port in use fails to start; a stopped one answers no more", async () => {
    await assert.rejects(
      startResponder(b.name, { tcpPorts: [8080], udpPorts: [] }),
      /responder in .*: exited \(1\): responder: .*EADDRINUSE/,
    );
    const extra = await startResponder(a.name, { tcpPorts: [6000], udpPorts: [6000], echo: true });
    const t: ProbeTarget[] = [{ proto: "tcp", addr: "10.9.0.1", port: 6000 }];
    assert.deepEqual(await probeFrom(b.name, t), [
      { target: t[0], ok: true, detail: "connected, seen as 10.9.0.2", seenAs: "10.9.0.2" },
    ]);
    // With echo, what is sent after the greeting comes back.
    const echoed = await b.sh(
      process.execPath,
      "-e",
      `const s = require("net").connect(6000, "10.9.0.1"); let got = "";
       s.on("data", (d) => { got += d; if (got.endsWith("ping")) { console.log(got.split("\\n")[1]); s.destroy(); } });
       s.write("ping");`,
    );
    assert.equal(echoed.trim(), "ping");
    await extra.stop();
    await extra.stop();
    assert.equal((await probeFrom(b.name, t))[0]?.detail, "refused");
  });
});
