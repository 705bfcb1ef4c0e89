// The CNI plugin with twill-agent running, as on a real node: the built
// plugin run as a runtime runs it (environment + stdin, stdout + exit code)
// with its default policy wait, and a real `twill agent` in the same host
// namespace, both against a real etcd. An endpoint the plugin creates gets
// its policy with no other step: ADD returns only once the agent has
// reported the endpoint programmed, and the first packets after ADD are
// already allowed or denied as the policy (applied before the ADD) says.
//
//   host namespace: twill agent, the plugin (nsenter), tw<hash> veths
//     srv  (app=server)  8080, 9090      ingress: TCP 8080 from app=client only
//     cli  (app=client)                  egress: allow all
//     bad  (app=client, quarantine=yes)  both ways: deny all (an earlier tier)
//   namespace profile kns.shop: allow all (so every denial is a policy's)
//
// Needs root, iproute2, nsenter, nft and etcd; skipped otherwise. Every
// namespace is twt-<random>-..., removed in `after` even when a test fails.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Resource } from "../api/resource.js";
import { globalPolicy, namespaceProfile, tier } from "../calc/testing/resources.js";
import { endpointStatusKey, parseEndpointStatus } from "../datastore/endpoint-status.js";
import { startEtcd } from "../datastore/etcd-server.js";
import type { EtcdServer } from "../datastore/etcd-server.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { WORKLOAD_ENDPOINT } from "./endpoint-resource.js";
import { EtcdHttpBackend } from "./etcd-http-backend.js";
import { UPLINK_V4, netnsUnavailableReason, startNetnsLab } from "./testing/netns-lab.js";
import type { LabAgent, NetnsLab, PluginCall } from "./testing/netns-lab.js";

const skip = netnsUnavailableReason();
const NODE = "agent-host";
const NAMESPACE = "shop";

function ok(call: PluginCall): Record<string, unknown> {
  assert.equal(call.exitCode, 0, `plugin failed: ${call.stdout} ${call.stderr}`);
  return call.json ?? {};
}

function addressOf(result: Record<string, unknown>): string {
  const [ip] = (result["ips"] as { address: string }[] | undefined) ?? [];
  assert.ok(ip, `no address in ${JSON.stringify(result)}`);
  return ip.address.split("/")[0] as string;
}

describe(
  "CNI plugin with the agent running",
  { skip, concurrency: false, timeout: 180_000 },
  () => {
    let etcd: EtcdServer;
    let backend: EtcdHttpBackend;
    let store: ResourceStore;
    let lab: NetnsLab;
    let host: string;
    let agent: LabAgent;
    const netns = new Map<string, string>();
    let serverIp = "";

    const conf = {
      cniVersion: "1.1.0",
      name: "twnet",
      type: "twill",
      nodename: NODE,
      namespace: NAMESPACE,
      // The policy wait is on by default; only its bound is shortened.
      policy: { timeoutSeconds: 20 },
    };
    const env = (command: string, name: string): Record<string, string> => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: `ctr-${name}`,
      CNI_NETNS: netns.get(name) as string,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin",
    });
    const add = async (name: string, labels: Record<string, string>) =>
      lab.plugin(host, env("ADD", name), {
        ...conf,
        etcd_endpoints: lab.etcdEndpoint,
        labels,
      });
    const statusOf = async (wepName: string) => {
      const key = endpointStatusKey(store.prefix, {
        node: NODE,
        namespace: NAMESPACE,
        name: wepName,
      });
      const entry = await backend.get(key);
      return entry && parseEndpointStatus(entry.value, key);
    };
    const endpointOf = async (name: string): Promise<Resource> => {
      const wepName = `${NODE.replaceAll("-", "--")}-cni-ctr--${name}-eth0`;
      return store.get(WORKLOAD_ENDPOINT, wepName, { namespace: NAMESPACE });
    };

    before(async () => {
      etcd = await startEtcd();
      backend = new EtcdHttpBackend({ endpoints: [etcd.endpoint] });
      store = new ResourceStore(backend);
      lab = await startNetnsLab(etcd);
      host = await lab.addHost();
      for (const name of ["srv", "cli", "bad"]) netns.set(name, await lab.addWorkload());

      // Everything the endpoints need exists before the first ADD.
      await store.create({
        apiVersion: "projectcalico.org/v3",
        kind: "IPPool",
        metadata: { name: "pool" },
        spec: { cidr: "10.71.0.0/16" },
      });
      // The namespace's profile allows everything: what is denied below is denied by a policy.
      await store.create(namespaceProfile(NAMESPACE));
      await store.create(tier("quarantine", { order: 10 }));
      await store.create(
        globalPolicy("quarantine.deny-all", {
          tier: "quarantine",
          selector: "quarantine == 'yes'",
          types: ["Ingress", "Egress"],
          ingress: [{ action: "Deny" }],
          egress: [{ action: "Deny" }],
        }),
      );
      await store.create(
        globalPolicy("server-ingress", {
          selector: "app == 'server'",
          types: ["Ingress"],
          ingress: [
            {
              action: "Allow",
              protocol: "TCP",
              source: { selector: "app == 'client'" },
              destination: { ports: [8080] },
            },
          ],
        }),
      );
      await store.create(
        globalPolicy("client-egress", {
          selector: "app == 'client'",
          types: ["Egress"],
          egress: [{ action: "Allow" }],
        }),
      );
      agent = await lab.startAgent(host, { node: NODE });
    });

    after(async () => {
      await agent?.stop();
      await lab?.close();
      await backend?.close();
      await etcd?.stop();
      if (lab) assert.deepEqual(await lab.namespaces(), [], "every namespace of the lab is gone");
    });

    it("ADD returns only once the agent has reported the endpoint programmed", async () => {
      const result = ok(await add("srv", { app: "server" }));
      serverIp = addressOf(result);
      // Read right after ADD returned: the agent's report is already there,
      // about this very revision of the endpoint.
      const wep = await endpointOf("srv");
      const status = await statusOf(wep.metadata.name);
      assert.deepEqual(status, {
        state: "programmed",
        resourceVersion: wep.metadata.resourceVersion,
      });
      await lab.serve(netns.get("srv") as string, [8080, 9090]);
    });

    it("a new workload's first packets already follow its policy and its peer's", async () => {
      ok(await add("cli", { app: "client" }));
      // One attempt each, straight after ADD: no retries, no waiting.
      assert.deepEqual(
        await lab.probe(netns.get("cli") as string, [`${serverIp}:8080`, `${serverIp}:9090`]),
        { [`${serverIp}:8080`]: true, [`${serverIp}:9090`]: false },
      );
    });

    it("a workload with a deny policy reaches nothing right after ADD", async () => {
      const result = ok(await add("bad", { app: "client", quarantine: "yes" }));
      const badIp = addressOf(result);
      assert.deepEqual(
        await lab.probe(netns.get("bad") as string, [
          `${serverIp}:8080`,
          `${serverIp}:9090`,
          `${UPLINK_V4}:22`,
        ]),
        { [`${serverIp}:8080`]: false, [`${serverIp}:9090`]: false, [`${UPLINK_V4}:22`]: false },
      );
      // Its ingress is denied too, where its profile alone would allow it.
      await lab.serve(netns.get("bad") as string, [8080]);
      assert.deepEqual(await lab.probe(netns.get("cli") as string, [`${badIp}:8080`]), {
        [`${badIp}:8080`]: false,
      });
    });

    it("DEL removes the endpoint and its status; the agent keeps running", async () => {
      const weps = await Promise.all(["srv", "cli", "bad"].map((n) => endpointOf(n)));
      for (const name of ["srv", "cli", "bad"]) {
        ok(
          await lab.plugin(host, env("DEL", name), {
            ...conf,
            etcd_endpoints: lab.etcdEndpoint,
          }),
        );
      }
      assert.deepEqual((await store.list(WORKLOAD_ENDPOINT)).items, []);
      for (const wep of weps) assert.equal(await statusOf(wep.metadata.name), undefined);
      assert.equal(
        agent.lines.some((l) => l["level"] === "error" || l["level"] === 50),
        false,
        JSON.stringify(agent.lines.filter((l) => l["level"] === "error" || l["level"] === 50)),
      );
    });
  },
);
