import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FELIX_CONFIGURATION_DEFAULTS } from "../api/schemas/felix-configuration.js";
import { DEFAULT_ETCD_ENDPOINT } from "../datastore/connect.js";
import { isErrorCode } from "../util/errors.js";
import { CONFIG_PARAMS, configParam, parseConfigFile, resolveConfig } from "./config.js";
import type { ConfigSources } from "./config.js";
import { formatDuration } from "./config-types.js";

const ctx = { hostname: "host-1" };

describe("agent config table", () => {
  it("derives flags and environment variables from the names", () => {
    assert.equal(configParam("nodeName").flag, "--node-name");
    assert.equal(configParam("nodeName").env, "TWILL_NODE_NAME");
    assert.equal(configParam("ipv6Support").env, "TWILL_IPV6_SUPPORT");
    assert.equal(configParam("configFile").flag, "--config");
    // The datastore settings share datastore/connect.ts's variables and flags.
    assert.equal(configParam("etcdCaCertFile").env, "TWILL_ETCD_CA_CERT_FILE");
    assert.equal(configParam("etcdCaCertFile").flag, "--etcd-ca-cert-file");
    assert.equal(configParam("etcdEndpoints").default, DEFAULT_ETCD_ENDPOINT);
  });

  it("names every setting once and describes it", () => {
    const names = CONFIG_PARAMS.map((p) => p.name);
    assert.equal(new Set(names).size, names.length);
    const envs = CONFIG_PARAMS.map((p) => p.env);
    assert.equal(new Set(envs).size, envs.length);
    for (const p of CONFIG_PARAMS) assert.ok(p.description.length > 10, p.name);
  });

  it("makes FelixConfiguration-settable settings real FelixConfiguration fields with the same defaults where they agree", () => {
    const felixDefaults = FELIX_CONFIGURATION_DEFAULTS as Record<string, unknown>;
    for (const p of CONFIG_PARAMS.filter((q) => q.felix)) {
      if (!(p.name in felixDefaults)) continue;
      if (p.name === "healthHost") continue; // ours is 127.0.0.1, Calico's "localhost"
      assert.deepEqual(p.type.fromValue(felixDefaults[p.name]), p.default, p.name);
    }
  });
});

describe("resolveConfig", () => {
  const felix = (name: string, spec: Record<string, unknown>) => ({ name, spec });
  const cases: {
    name: string;
    sources: ConfigSources;
    expect: Record<string, unknown>;
    origins?: Record<string, string>;
  }[] = [
    {
      name: "built-in defaults, the node name from the host name",
      sources: {},
      expect: {
        nodeName: "host-1",
        healthPort: 9099,
        healthHost: "127.0.0.1",
        maxApplyFailures: 5,
        deviceRouteProtocol: 116,
      },
      origins: { nodeName: "default" },
    },
    {
      name: "a flag beats the environment, the file and FelixConfiguration",
      sources: {
        flags: { healthPort: "9100" },
        env: { TWILL_HEALTH_PORT: "9101" },
        file: { path: "/etc/twill.yaml", values: { healthPort: 9102 } },
        felixNode: felix("node.host-1", { healthPort: 9103 }),
      },
      expect: { healthPort: 9100 },
      origins: { healthPort: "flag --health-port" },
    },
    {
      name: "the environment beats the file",
      sources: {
        env: { TWILL_LOG_SEVERITY_SCREEN: "debug" },
        file: { path: "f.yaml", values: { logSeverityScreen: "Error" } },
      },
      expect: { logSeverityScreen: "Debug" },
      origins: { logSeverityScreen: "environment TWILL_LOG_SEVERITY_SCREEN" },
    },
    {
      name: "an empty flag or variable counts as not given",
      sources: { flags: { healthPort: "" }, env: { TWILL_HEALTH_PORT: "" } },
      expect: { healthPort: 9099 },
    },
    {
      name: "the file beats FelixConfiguration",
      sources: {
        file: { path: "f.yaml", values: { routeRefreshInterval: "10s" } },
        felixDefault: felix("default", { routeRefreshInterval: "20s" }),
      },
      expect: { routeRefreshInterval: 10_000 },
    },
    {
      name: "node.<name> beats default, which beats the built-in default",
      sources: {
        felixNode: felix("node.host-1", { defaultEndpointToHostAction: "Accept" }),
        felixDefault: felix("default", {
          defaultEndpointToHostAction: "Return",
          ipv6Support: false,
        }),
      },
      expect: { defaultEndpointToHostAction: "Accept", ipv6Support: false },
      origins: {
        defaultEndpointToHostAction:
          'FelixConfiguration "node.host-1" spec.defaultEndpointToHostAction',
        ipv6Support: 'FelixConfiguration "default" spec.ipv6Support',
      },
    },
    {
      name: "FelixConfiguration cannot set agent-only settings",
      sources: { felixDefault: felix("default", { maxApplyFailures: 1, nodeName: "x" }) },
      expect: { maxApplyFailures: 5, nodeName: "host-1" },
    },
    {
      name: "typed values: durations, lists, failsafe ports, booleans",
      sources: {
        env: {
          TWILL_NFTABLES_REFRESH_INTERVAL: "1m30s",
          TWILL_INTERFACE_PREFIX: "cali",
          TWILL_FAILSAFE_INBOUND_HOST_PORTS: "tcp:22, udp:68, tcp:10.0.0.0/8:2379",
          TWILL_IPV6_SUPPORT: "false",
          TWILL_MIN_APPLY_INTERVAL: "0.1",
        },
        felixDefault: felix("default", {
          failsafeOutboundHostPorts: [{ protocol: "udp", port: 53 }],
        }),
      },
      expect: {
        nftablesRefreshInterval: 90_000,
        interfacePrefix: "cali",
        failsafeInboundHostPorts: [
          { protocol: "TCP", port: 22 },
          { protocol: "UDP", port: 68 },
          { protocol: "TCP", port: 2379, net: "10.0.0.0/8" },
        ],
        failsafeOutboundHostPorts: [{ protocol: "UDP", port: 53 }],
        ipv6Support: false,
        minApplyInterval: 100,
      },
    },
    {
      name: '"none" opens no failsafe ports',
      sources: { flags: { failsafeInboundHostPorts: "none" } },
      expect: { failsafeInboundHostPorts: [] },
    },
    {
      name: "node addresses and AS number",
      sources: { flags: { nodeIPv4: "10.0.0.1/24", nodeIPv6: "fd00::1/64", asNumber: "1.10" } },
      expect: { nodeIPv4: "10.0.0.1/24", nodeIPv6: "fd00::1/64", asNumber: 65546 },
    },
    {
      name: "BGP settings: on by default, the BIRD directory computed by the agent",
      sources: {},
      expect: { bgpEnabled: true, birdDir: undefined, birdBinary: "bird", birdStopOnExit: false },
    },
    {
      name: "BGP settings from flags and the environment",
      sources: {
        flags: { bgpEnabled: "false", birdDir: "/tmp/b/n1" },
        env: { TWILL_BIRD_BINARY: "/usr/sbin/bird" },
      },
      expect: { bgpEnabled: false, birdDir: "/tmp/b/n1", birdBinary: "/usr/sbin/bird" },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = resolveConfig(c.sources, ctx);
      for (const [k, v] of Object.entries(c.expect)) {
        assert.deepEqual((r.config as Record<string, unknown>)[k], v, k);
      }
      for (const [k, v] of Object.entries(c.origins ?? {})) {
        assert.equal((r.origins as Record<string, string>)[k], v, k);
      }
    });
  }

  const bad: { name: string; sources: ConfigSources; message: RegExp }[] = [
    {
      name: "a bad flag names the flag and the setting",
      sources: { flags: { healthPort: "http" } },
      message: /healthPort from flag --health-port: "http" is not an integer/,
    },
    {
      name: "a bad variable names the variable",
      sources: { env: { TWILL_DEFAULT_ENDPOINT_TO_HOST_ACTION: "Allow" } },
      message:
        /defaultEndpointToHostAction from environment TWILL_DEFAULT_ENDPOINT_TO_HOST_ACTION: "Allow" is not one of Drop, Return, Accept/,
    },
    {
      name: "a bad file value names the file",
      sources: { file: { path: "/etc/twill/agent.yaml", values: { maxApplyFailures: "five" } } },
      message:
        /maxApplyFailures from config file \/etc\/twill\/agent.yaml: expected a number, got "five"/,
    },
    {
      name: "an IPv6 address given for --node-ipv4",
      sources: { flags: { nodeIPv4: "fd00::1/64" } },
      message: /nodeIPv4 from flag --node-ipv4: "fd00::1\/64" is not an IPv4 address/,
    },
    {
      name: "a bad failsafe port",
      sources: { env: { TWILL_FAILSAFE_OUTBOUND_HOST_PORTS: "icmp:0" } },
      message:
        /failsafeOutboundHostPorts from environment TWILL_FAILSAFE_OUTBOUND_HOST_PORTS: icmp:0: protocol "ICMP" is not TCP, UDP or SCTP/,
    },
    {
      name: "an invalid node name",
      sources: { flags: { nodeName: "Host_1" } },
      message: /nodeName from flag --node-name: "Host_1" is invalid: a DNS-1123 subdomain/,
    },
  ];
  for (const c of bad) {
    it(`refuses: ${c.name}`, () => {
      assert.throws(
        () => resolveConfig(c.sources, ctx),
        (err: unknown) => isErrorCode(err, "Invalid") && c.message.test(err.message),
      );
    });
  }

  it("reports every bad value at once", () => {
    assert.throws(
      () =>
        resolveConfig({ flags: { healthPort: "x" }, env: { TWILL_MAX_APPLY_FAILURES: "0" } }, ctx),
      (err: unknown) =>
        isErrorCode(err, "Invalid") &&
        /healthPort/.test(err.message) &&
        /maxApplyFailures.*0 is outside 1-1000/.test(err.message),
    );
  });

  it("skips a bad FelixConfiguration value with a warning, falling back to the next source", () => {
    const r = resolveConfig(
      {
        felixNode: { name: "node.host-1", spec: { healthPort: "nine" } },
        felixDefault: { name: "default", spec: { healthPort: 9200 } },
      },
      ctx,
    );
    assert.equal(r.config.healthPort, 9200);
    assert.equal(r.warnings.length, 1);
    assert.match(
      r.warnings[0] ?? "",
      /healthPort from FelixConfiguration "node.host-1" spec.healthPort: expected a number/,
    );
  });
});

describe("parseConfigFile", () => {
  it("reads YAML and JSON", () => {
    assert.deepEqual(parseConfigFile("a.yaml", "healthPort: 9100\ninterfacePrefix: tw\n").values, {
      healthPort: 9100,
      interfacePrefix: "tw",
    });
    assert.deepEqual(parseConfigFile("a.json", '{"nodeName": "h2"}').values, { nodeName: "h2" });
    assert.deepEqual(parseConfigFile("empty.yaml", "").values, {});
  });

  it("refuses unknown settings and settings a file may not set, naming the file", () => {
    assert.throws(
      () => parseConfigFile("/etc/a.yaml", "helthPort: 1\n"),
      /config file \/etc\/a.yaml: unknown setting "helthPort"/,
    );
    assert.throws(
      () => parseConfigFile("a.yaml", "configFile: b.yaml\n"),
      /"configFile" cannot be set in a config file/,
    );
    assert.throws(() => parseConfigFile("a.yaml", "- 1\n"), /expected a mapping/);
    assert.throws(() => parseConfigFile("a.yaml", "a: [\n"), /not YAML or JSON/);
  });
});

describe("formatDuration", () => {
  for (const [ms, text] of [
    [0, "0s"],
    [50, "50ms"],
    [1500, "1500ms"],
    [90_000, "1m30s"],
    [30_000, "30s"],
    [120_000, "2m"],
  ] as const) {
    it(`${ms} ms is ${text}`, () => assert.equal(formatDuration(ms), text));
  }
});
