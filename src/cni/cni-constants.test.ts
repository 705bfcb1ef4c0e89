// The plugin keeps copies of two of the agent's settings (to start without
// loading the FelixConfiguration schema); they must stay the same.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  FELIX_CONFIGURATION_DEFAULTS,
  TWILL_ROUTE_PROTOCOL,
} from "../api/schemas/felix-configuration.js";
import { DEFAULT_INTERFACE_PREFIX } from "./cni-config.js";
import { ROUTE_PROTOCOL } from "./netlink.js";

describe("CNI constants shared with the agent", () => {
  it("uses twill's route protocol and interface prefix", () => {
    assert.equal(ROUTE_PROTOCOL, TWILL_ROUTE_PROTOCOL);
    assert.equal(DEFAULT_INTERFACE_PREFIX, FELIX_CONFIGURATION_DEFAULTS.interfacePrefix);
  });
});
