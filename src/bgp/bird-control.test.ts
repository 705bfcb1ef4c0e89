// The BIRD control socket client: the reply framing and parsers on replies
// captured from BIRD 2.0.12, then the client against a real BIRD in a
// network namespace of its own.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { NetnsPool } from "../dataplane/netns-testkit.js";
import type { Netns } from "../dataplane/netns-testkit.js";
import { isErrorCode } from "../util/errors.js";
import {
  BirdCommandError,
  BirdControl,
  parseProtocols,
  parseRouteCount,
  parseRoutes,
  parseStatus,
  splitReply,
} from "./bird-control.js";
import { birdPaths } from "./bgp-inputs.js";
import { birdUnavailable, killBird, tempDir, until } from "./testing/bird-netns.js";

const lines = (text: string) => splitReply(text).lines;

describe("BIRD reply framing", () => {
  it("ends a reply at the first line with a space after the code; continuations keep the code", () => {
    const r = splitReply(
      "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.1\n Hostname is vm\n0013 Daemon is up and running\nextra",
    );
    assert.equal(r.done, true);
    assert.deepEqual(r.lines, [
      { code: 1000, text: "BIRD 2.0.12" },
      { code: 1011, text: "Router ID is 10.0.0.1" },
      { code: 1011, text: "Hostname is vm" },
      { code: 13, text: "Daemon is up and running" },
    ]);
    assert.equal(r.rest, "extra");
  });

  it("waits for more when the final line has not arrived, carrying the last code", () => {
    const r = splitReply(
      "1007-Table master4:\n 10.65.0.0/26   unreachable [s4 05:22:59.020] * (200)\n 10.6",
    );
    assert.equal(r.done, false);
    assert.equal(r.lines.length, 2);
    assert.equal(r.rest, " 10.6");
    const next = splitReply(
      `${r.rest}5.1.0/26   unreachable [s4 05:22:59.020] * (200)\n0000 \n`,
      r.lastCode,
    );
    assert.equal(next.done, true);
    assert.deepEqual(next.lines[0], {
      code: 1007,
      text: "10.65.1.0/26   unreachable [s4 05:22:59.020] * (200)",
    });
  });
});

const STATUS = `1000-BIRD 2.0.12
1011-Router ID is 10.0.0.1
 Hostname is vm
 Current server time is 2026-11-26 05:23:00.072
 Last reboot on 2026-11-26 05:22:59.020
 Last reconfiguration on 2026-11-26 05:22:59.020
0013 Daemon is up and running
`;

const PROTOCOLS = `2002-Name       Proto      Table      State  Since         Info
1002-device1    Device     ---        up     05:22:59.020  
1006-
1002-k4         Kernel     master4    up     05:22:59.020  
1006-  Channel ipv4
     State:          UP
     Table:          master4
     Preference:     10
     Input filter:   ACCEPT
     Output filter:  ACCEPT
     Routes:         0 imported, 1 exported, 0 preferred
 
1002-mesh_10_0_0_2 BGP        ---        up     2026-11-26 05:23:12  Established   
1006-  BGP state:          Established
    Neighbor address: 10.0.0.2
    Neighbor AS:      64512
    Local AS:         64512
    Neighbor ID:      10.0.0.2
    Local capabilities
      Multiprotocol
        AF announced: ipv4
      Graceful restart
        Restart time: 120
    Session:          internal multihop AS4
    Source address:   10.0.0.1
    Hold timer:       197.956/240
  Channel ipv4
    State:          UP
    Table:          master4
    Preference:     100
    Input filter:   ACCEPT
    Output filter:  (unnamed)
    Routes:         1 imported, 1 exported, 1 preferred
  Channel ipv6
    State:          UP
    Table:          master6
    Routes:         2 imported, 0 filtered, 3 exported, 2 preferred
 
1002-global_192_0_2_9 BGP        ---        start  05:22:59.020  Active        Socket: Connection refused
1006-  BGP state:          Active
    Neighbor address: 192.0.2.9
    Neighbor AS:      65001
    Local AS:         64512
    Connect delay:    2.612/5
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN
    Table:          master4
 
0000 
`;

const ROUTES = `1007-Table master4:
 10.65.1.0/26         blackhole [twill_blocks4 05:23:11.549] * (200)
 10.65.2.0/26         unicast [mesh_10_0_0_2 05:23:12.536] * (100) [i]
 \tvia 10.0.0.2 on e0
                      unicast [mesh_10_0_0_3 05:23:12.601] (100) [i]
 \tvia 10.0.0.3 on e0
 10.65.3.0/26         unicast [mesh_10_0_0_2 2026-11-26 05:23:12] * (100) [AS65001i]
 \tvia 10.0.0.2 on e0 weight 1
 \tvia 10.0.0.3 on e0 weight 1
1008-\tType: BGP univ
1012-\tBGP.origin: IGP
 \tBGP.as_path: 65001
 \tBGP.next_hop: 10.0.0.2
1007-10.0.0.0/24          unicast [direct1 05:23:11.554] * (240)
 \tdev e0
0000 
`;

describe("BIRD reply parsers", () => {
  it("show status", () => {
    assert.deepEqual(parseStatus(lines(STATUS)), {
      version: "2.0.12",
      routerId: "10.0.0.1",
      hostname: "vm",
      serverTime: "2026-11-26 05:23:00.072",
      lastReboot: "2026-11-26 05:22:59.020",
      lastReconfiguration: "2026-11-26 05:22:59.020",
      message: "Daemon is up and running",
    });
  });

  it("show protocols all: summary columns, BGP details, routes per channel and summed", () => {
    const ps = parseProtocols(lines(PROTOCOLS));
    assert.deepEqual(
      ps.map((p) => [p.name, p.proto, p.state, p.since, p.info]),
      [
        ["device1", "Device", "up", "05:22:59.020", ""],
        ["k4", "Kernel", "up", "05:22:59.020", ""],
        ["mesh_10_0_0_2", "BGP", "up", "2026-11-26 05:23:12", "Established"],
        ["global_192_0_2_9", "BGP", "start", "05:22:59.020", "Active Socket: Connection refused"],
      ],
    );
    const mesh = ps[2]!;
    assert.deepEqual(mesh.bgp, {
      state: "Established",
      neighborAddress: "10.0.0.2",
      neighborAs: 64512,
      localAs: 64512,
      neighborId: "10.0.0.2",
      session: "internal multihop AS4",
      sourceAddress: "10.0.0.1",
    });
    assert.deepEqual(mesh.routes, { imported: 3, exported: 4, preferred: 3, filtered: 0 });
    assert.deepEqual(
      mesh.channels.map((c) => [c.name, c.state, c.table, c.imported, c.filtered, c.exported]),
      [
        ["ipv4", "UP", "master4", 1, 0, 1],
        ["ipv6", "UP", "master6", 2, 0, 3],
      ],
    );
    assert.equal(ps[3]!.bgp?.lastError, "Socket: Connection refused");
    assert.deepEqual(ps[1]!.routes, { imported: 0, exported: 1, preferred: 0, filtered: 0 });
  });

  it("show route [all]: prefixes, routes without a prefix column, ECMP next hops, attributes", () => {
    const rs = parseRoutes(lines(ROUTES));
    assert.deepEqual(
      rs.map((r) => [r.prefix, r.type, r.protocol, r.primary, r.origin ?? "", r.nexthops]),
      [
        ["10.65.1.0/26", "blackhole", "twill_blocks4", true, "", []],
        ["10.65.2.0/26", "unicast", "mesh_10_0_0_2", true, "i", [{ via: "10.0.0.2", dev: "e0" }]],
        ["10.65.2.0/26", "unicast", "mesh_10_0_0_3", false, "i", [{ via: "10.0.0.3", dev: "e0" }]],
        [
          "10.65.3.0/26",
          "unicast",
          "mesh_10_0_0_2",
          true,
          "AS65001i",
          [
            { via: "10.0.0.2", dev: "e0", weight: 1 },
            { via: "10.0.0.3", dev: "e0", weight: 1 },
          ],
        ],
        ["10.0.0.0/24", "unicast", "direct1", true, "", [{ dev: "e0" }]],
      ],
    );
    assert.equal(rs[3]!.since, "2026-11-26 05:23:12");
    assert.deepEqual(rs[3]!.attributes, {
      Type: "BGP univ",
      "BGP.origin": "IGP",
      "BGP.as_path": "65001",
      "BGP.next_hop": "10.0.0.2",
    });
    assert.ok(rs.every((r) => r.table === "master4"));
  });

  it("show route count: one table, several tables with a total", () => {
    assert.equal(
      parseRouteCount(lines("1007-1 of 3 routes for 3 networks in table master4\n0000 \n")),
      1,
    );
    assert.equal(
      parseRouteCount(
        lines(
          "1007-3 of 3 routes for 3 networks in table master4\n 2 of 2 routes for 2 networks in table master6\n0014 Total: 5 of 5 routes for 5 networks in 2 tables\n",
        ),
      ),
      5,
    );
  });
});

describe(
  "BIRD control socket (real BIRD in a network namespace)",
  { skip: birdUnavailable(), timeout: 60_000 },
  () => {
    const pool = new NetnsPool();
    const dir = tempDir("birdctl");
    const paths = birdPaths(dir.path);
    let ns: Netns;
    let control: BirdControl | undefined;

    before(async () => {
      ns = await pool.create("b");
      await ns.sh("ip", "link", "add", "e0", "type", "veth", "peer", "name", "e1");
      await ns.sh("ip", "addr", "add", "10.0.0.1/24", "dev", "e0");
      await ns.sh("ip", "link", "set", "e0", "up");
      await ns.sh("ip", "link", "set", "e1", "up");
      writeFileSync(
        paths.config,
        [
          "router id 10.0.0.1;",
          "protocol device {}",
          'protocol direct d1 { ipv4; interface "e*"; }',
          "protocol static s4 { ipv4; route 10.65.0.0/26 blackhole; route 10.65.0.64/26 blackhole; }",
          "protocol bgp mesh_10_0_0_2 { local 10.0.0.1 as 64512; neighbor 10.0.0.2 as 64512; connect retry time 1;",
          '  ipv4 { import all; export where proto = "s4"; }; }',
          "",
        ].join("\n"),
      );
      const bird = ns.spawn("bird", [
        "-f",
        "-c",
        paths.config,
        "-s",
        paths.socket,
        "-P",
        paths.pidFile,
      ]);
      let stderr = "";
      bird.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      await until(
        "BIRD's control socket",
        async () => {
          try {
            control = await BirdControl.connect(paths.socket, { timeoutMs: 1000 });
            return true;
          } catch {
            return false;
          }
        },
        10_000,
        () => stderr,
      );
    });

    after(async () => {
      control?.close();
      killBird(paths.pidFile);
      await pool.cleanup();
      dir.remove();
    });

    it("greets with the version and answers show status", async () => {
      assert.match(control!.version, /^2\./);
      const status = await control!.showStatus();
      assert.equal(status.routerId, "10.0.0.1");
      assert.equal(status.message, "Daemon is up and running");
    });

    it("lists protocols with BGP details, and one protocol by name", async () => {
      const ps = await control!.showProtocols();
      assert.deepEqual(
        ps.map((p) => p.name),
        ["device1", "d1", "s4", "mesh_10_0_0_2"],
      );
      const [bgp] = await control!.showProtocols("mesh_10_0_0_2");
      assert.equal(bgp?.proto, "BGP");
      assert.equal(bgp?.bgp?.neighborAddress, "10.0.0.2");
      assert.equal(bgp?.bgp?.neighborAs, 64512);
      assert.notEqual(bgp?.bgp?.state, "Established");
      assert.deepEqual(ps.find((p) => p.name === "s4")?.routes, {
        imported: 2,
        exported: 0,
        preferred: 2,
        filtered: 0,
      });
    });

    it("shows and counts routes, by protocol", async () => {
      const routes = await control!.showRoutes({ protocol: "s4" });
      assert.deepEqual(
        routes.map((r) => [r.prefix, r.type, r.protocol]),
        [
          ["10.65.0.0/26", "blackhole", "s4"],
          ["10.65.0.64/26", "blackhole", "s4"],
        ],
      );
      assert.equal(await control!.countRoutes({ protocol: "s4" }), 2);
      assert.equal(await control!.countRoutes(), 3); // and the direct 10.0.0.0/24
      const all = await control!.showRoutes({ protocol: "d1", all: true });
      assert.equal(all[0]?.attributes["Type"], "device univ");
    });

    it("runs queued commands in order on one connection", async () => {
      const [a, b, c] = await Promise.all([
        control!.countRoutes({ protocol: "s4" }),
        control!.showStatus(),
        control!.countRoutes({ protocol: "d1" }),
      ]);
      assert.deepEqual([a, b.routerId, c], [2, "10.0.0.1", 1]);
    });

    it("turns BIRD's errors into BirdCommandError and keeps the connection usable", async () => {
      await assert.rejects(control!.request("show frobnicate"), (err: unknown) => {
        assert.ok(err instanceof BirdCommandError);
        assert.equal(err.birdCode, 9001);
        assert.equal(err.code, "Invalid");
        return true;
      });
      assert.equal((await control!.showStatus()).routerId, "10.0.0.1");
      await assert.rejects(control!.showProtocols("no such"), (err: unknown) =>
        isErrorCode(err, "Invalid"),
      );
    });

    it("reconfigures from the file", async () => {
      const reply = await control!.configure();
      assert.match(reply, /Reconfigured|Reading configuration/);
    });

    it("reports a socket nothing listens on as Unavailable", async () => {
      await assert.rejects(
        BirdControl.connect(`${dir.path}/nothing.ctl`, { timeoutMs: 500 }),
        (err: unknown) => isErrorCode(err, "Unavailable"),
      );
    });

    it("shuts BIRD down with `down`", async () => {
      const c = await BirdControl.connect(paths.socket);
      await c.down();
      c.close();
      await until("BIRD gone", async () => {
        try {
          (await BirdControl.connect(paths.socket, { timeoutMs: 300 })).close();
          return false;
        } catch {
          return true;
        }
      });
    });
  },
);
