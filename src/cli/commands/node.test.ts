// `twill node status | routes` through runCli, against a stand-in for BIRD's
// control socket that answers with replies captured from BIRD 2.0.12 (the
// real BIRD is in src/bgp/bgp-netns.test.ts). Also: session kinds read from
// a bird.conf the real renderer wrote.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stored } from "../../calc/testing/resources.js";
import { birdPaths } from "../../bgp/bgp-inputs.js";
import { buildBgpModel } from "../../bgp/bgp-model.js";
import { renderBird } from "../../bgp/render-bird.js";
import { sessionKindFromName, sessionOriginsFromConfig } from "../../bgp/session-kinds.js";
import { runCli } from "../main.js";
import { captureOutput } from "../output.js";

const REPLIES: Record<string, string> = {
  "show status": `1000-BIRD 2.0.12
1011-Router ID is 10.0.0.1
 Hostname is vm
 Current server time is 2026-11-26 05:23:00.072
 Last reboot on 2026-11-26 05:22:59.020
 Last reconfiguration on 2026-11-26 05:22:59.520
0013 Daemon is up and running
`,
  "show protocols all": `2002-Name       Proto      Table      State  Since         Info
1002-twill_device Device     ---        up     05:22:59.020  
1006-
1002-mesh_10_0_0_2 BGP        ---        up     05:23:12.101  Established   
1006-  BGP state:          Established
    Neighbor address: 10.0.0.2
    Neighbor AS:      64512
    Local AS:         64512
  Channel ipv4
    State:          UP
    Table:          master4
    Routes:         1 imported, 1 exported, 1 preferred
 
1002-global_10_0_0_254 BGP        ---        start  05:22:59.020  Active        Socket: Connection refused
1006-  BGP state:          Active
    Neighbor address: 10.0.0.254
    Neighbor AS:      65001
    Local AS:         64512
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN
    Table:          master4
 
0000 
`,
  "show route table all export mesh_10_0_0_2": `1007-Table master4:
 10.65.0.0/26         blackhole [twill_blocks4 05:22:59.020] * (200)
0000 
`,
  "show route table all protocol mesh_10_0_0_2 all": `1007-Table master4:
 10.65.1.0/26         unicast [mesh_10_0_0_2 05:23:12.536] * (100) [i]
 \tvia 10.0.0.2 on e0
1008-\tType: BGP univ
1012-\tBGP.origin: IGP
 \tBGP.as_path: 
 \tBGP.next_hop: 10.0.0.2
0000 
`,
};

const CONF = `# mesh: node-to-node mesh, node host-2
protocol bgp mesh_10_0_0_2 from twill_bgp {
}

# global: BGPPeer "tor"
protocol bgp global_10_0_0_254 from twill_bgp {
}
`;

describe("twill node (a stand-in BIRD socket)", () => {
  const dir = mkdtempSync(join(tmpdir(), "twt-node-"));
  const paths = birdPaths(dir);
  const asked: string[] = [];
  let server: Server;

  before(async () => {
    server = createServer((s) => {
      s.setEncoding("utf8");
      s.write("0001 BIRD 2.0.12 ready.\n");
      let buf = "";
      s.on("data", (d: string) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const cmd = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          asked.push(cmd);
          s.write(REPLIES[cmd] ?? "9001 syntax error\n");
        }
      });
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(paths.socket, r));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = async (args: string[], conf: string | null = CONF) => {
    const output = captureOutput();
    const code = await runCli(args, {
      output,
      env: { TWILL_NODE_NAME: "host-1" },
      readFile: async (p) => {
        if (p === paths.config && conf !== null) return conf;
        throw Object.assign(new Error("no such file"), { code: "ENOENT" });
      },
      readDir: async () => undefined,
      readStdin: async () => "",
      openStore: () => Promise.reject(new Error("node commands need no datastore")),
      versions: async () => ({ twill: "0", node: "0" }),
    });
    return { code, out: output.stdout, err: output.stderr };
  };

  it("status: BIRD's state and a row per session, kinds from bird.conf", async () => {
    const r = await run(["node", "status", "--bird-dir", dir]);
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      [
        "BIRD 2.0.12 of node host-1: Daemon is up and running",
        "  router ID 10.0.0.1, started 2026-11-26 05:22:59.020, last reconfigured 2026-11-26 05:22:59.520",
        `  directory ${dir}`,
        "",
        "PEER ADDRESS   KIND     PEER NODE   STATE         SINCE          IMPORTED   EXPORTED   INFO",
        "10.0.0.2       mesh     host-2      Established   05:23:12.101   1          1",
        "10.0.0.254     global               Active        05:22:59.020   0          0          Socket: Connection refused",
        "",
        "1 of 2 sessions established.",
        "",
      ].join("\n"),
    );
  });

  it("status -o json: the whole report", async () => {
    const r = await run(["node", "status", "--bird-dir", dir, "-o", "json"]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as {
      node: string;
      bird: { routerId: string };
      sessions: unknown[];
    };
    assert.equal(j.node, "host-1");
    assert.equal(j.bird.routerId, "10.0.0.1");
    assert.deepEqual(j.sessions[0], {
      name: "mesh_10_0_0_2",
      kind: "mesh",
      source: "node-to-node mesh",
      peerNode: "host-2",
      peerAddress: "10.0.0.2",
      peerAS: 64512,
      state: "Established",
      protocolState: "up",
      since: "05:23:12.101",
      info: "Established",
      routes: { imported: 1, exported: 1, preferred: 1, filtered: 0 },
    });
  });

  it("status without bird.conf: kinds from the session names", async () => {
    const r = await run(["node", "status", "--bird-dir", dir, "-o", "wide"], null);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /10\.0\.0\.2\s+mesh\s+Established/);
    assert.match(r.out, /10\.0\.0\.254\s+global\s+Active/);
    assert.match(r.out, /SESSION/);
  });

  it("routes: announced to up peers, learned with next hops", async () => {
    asked.length = 0;
    const r = await run(["node", "routes", "--bird-dir", dir]);
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      [
        "Announced by node host-1: 1",
        "PREFIX         TO PEERS",
        "10.65.0.0/26   10.0.0.2",
        "",
        "Learned from peers: 1",
        "PREFIX         NEXT HOP          FROM       BEST",
        "10.65.1.0/26   10.0.0.2 dev e0   10.0.0.2   yes",
        "",
        "Sessions not up (nothing exchanged): 10.0.0.254",
        "",
      ].join("\n"),
    );
    assert.ok(
      !asked.some((c) => c.includes("global_10_0_0_254 ")),
      "a session not up is not asked",
    );
    const j = JSON.parse((await run(["node", "routes", "--bird-dir", dir, "-o", "json"])).out) as {
      learned: { asPath?: string; nexthops: unknown }[];
    };
    assert.deepEqual(j.learned[0]?.nexthops, [{ via: "10.0.0.2", dev: "e0" }]);
    assert.equal(j.learned[0]?.asPath, "");
  });

  it("exits 6 with a hint when BIRD does not answer", async () => {
    const r = await run(["node", "status", "--node", "nowhere", "--bird-dir", join(dir, "none")]);
    assert.equal(r.code, 6);
    assert.match(r.err, /BIRD of node "nowhere" does not answer on .*none\/bird\.ctl/);
    assert.equal(r.out, "");
  });

  it("rejects an unknown output format", async () => {
    const r = await run(["node", "status", "-o", "yaml"]);
    assert.equal(r.code, 2);
  });
});

describe("session kinds from what render-bird.ts writes", () => {
  const V3 = "projectcalico.org/v3";
  const node = (name: string, ip: string, extra: Record<string, unknown> = {}, labels = {}) =>
    stored({
      apiVersion: V3,
      kind: "Node",
      metadata: { name, labels },
      spec: { bgp: { ipv4Address: ip, ...extra } },
    });

  it("labels mesh, global, node, reflector and rr-client sessions as the model does", () => {
    const inputs = {
      nodeName: "rr-1",
      nodes: [
        node("rr-1", "10.0.0.1/24", { routeReflectorClusterID: "244.0.0.1" }, { rr: "yes" }),
        node("host-2", "10.0.0.2/24"),
        node("rr-3", "10.0.0.3/24", { routeReflectorClusterID: "244.0.0.2" }, { rr: "yes" }),
      ] as never[],
      bgpConfigurations: [],
      bgpPeers: [
        stored({
          apiVersion: V3,
          kind: "BGPPeer",
          metadata: { name: "tor" },
          spec: { peerIP: "10.0.0.254", asNumber: 65001 },
        }),
        stored({
          apiVersion: V3,
          kind: "BGPPeer",
          metadata: { name: "rrs" },
          spec: { peerSelector: "rr == 'yes'" },
        }),
        stored({
          apiVersion: V3,
          kind: "BGPPeer",
          metadata: { name: "one" },
          spec: { node: "rr-1", peerIP: "10.0.0.9", asNumber: 65002 },
        }),
      ] as never[],
      ipPools: [],
      ownBlocks: [],
      localWorkloadAddresses: [],
    };
    const model = buildBgpModel(inputs);
    const text = renderBird(model, birdPaths("/x"));
    const origins = sessionOriginsFromConfig(text);
    for (const s of model.sessions) {
      assert.equal(origins.get(s.name)?.kind, s.kind, s.name);
      assert.equal(origins.get(s.name)?.source, s.source, s.name);
      assert.equal(origins.get(s.name)?.peerNode, s.peerNode, s.name);
      assert.equal(sessionKindFromName(s.name), s.scope, s.name);
    }
    assert.ok(model.sessions.length >= 3);
  });
});
