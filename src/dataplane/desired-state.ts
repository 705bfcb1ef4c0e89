// The dataplane's model of the calc graph's output: everything the calc has
// said it wants on this host, as plain maps, built by folding the message
// stream (src/calc/messages.ts) through applyMessage. Renderers (nftables,
// routes) read it; they never see messages.
//
//   calc flush() ──► DataplaneMessage[] ──applyMessage──► DesiredDataplane ──► render-nft
//
// Pure: no I/O. The calc's flush order (ipsets → policies → profiles →
// endpoints → routes, removes reversed) guarantees that nothing here refers
// to something not yet told; this module does not re-check references (the
// renderer fails closed on a dangling one) but refuses what it cannot apply
// at all: a delta for a set it has never been told about.
//
// Identity means change: every message that changes an entry puts a new
// object in its map (an ipset-delta a new DesiredIPSet around the same,
// updated, members Set), and nothing here mutates an entry's object after
// that. So a renderer may keep what it derived from an entry until the
// entry's object changes; told the ids of the entries that messages touched
// (noteChangedIds), it need look at nothing else (render-nft's
// RulesetRenderer does both).
import type {
  CompiledPolicy,
  CompiledProfile,
  DataplaneMessage,
  IPSetInfo,
  IPSetMember,
  LocalEndpoint,
  Route,
} from "../calc/messages.js";
import { TwillError } from "../util/errors.js";

export interface DesiredIPSet {
  info: IPSetInfo;
  members: Set<IPSetMember>;
}

export interface DesiredDataplane {
  /** By IPSetInfo.id. */
  ipsets: Map<string, DesiredIPSet>;
  /** By CompiledPolicy.id. */
  policies: Map<string, CompiledPolicy>;
  /** By CompiledProfile.id. */
  profiles: Map<string, CompiledProfile>;
  /** Local workload and host endpoints, by LocalEndpoint.id. */
  endpoints: Map<string, LocalEndpoint>;
  /** Local workload routes, by destination CIDR. */
  routes: Map<string, Route>;
  /** True once the calc has said in-sync: only then is the state complete. */
  inSync: boolean;
}

export function emptyDesiredDataplane(): DesiredDataplane {
  return {
    ipsets: new Map(),
    policies: new Map(),
    profiles: new Map(),
    endpoints: new Map(),
    routes: new Map(),
    inSync: false,
  };
}

/**
 * Folds one message into the state, in place, and returns the state (so a
 * message list can be reduced: `msgs.reduce(applyMessage, state)`). Updates
 * replace, removes of something absent are no-ops. Throws TwillError
 * "Internal" for an ipset-delta naming a set that is not there: the calc's
 * ordering contract was broken and the delta cannot be applied.
 */
export function applyMessage(state: DesiredDataplane, msg: DataplaneMessage): DesiredDataplane {
  switch (msg.type) {
    case "ipset-update":
      state.ipsets.set(msg.ipset.id, { info: msg.ipset, members: new Set(msg.members) });
      break;
    case "ipset-delta": {
      const set = state.ipsets.get(msg.id);
      if (!set) {
        throw new TwillError(
          "Internal",
          `ipset-delta for ip set "${msg.id}", which the dataplane was never told about`,
        );
      }
      for (const m of msg.removed) set.members.delete(m);
      for (const m of msg.added) set.members.add(m);
      state.ipsets.set(msg.id, { info: set.info, members: set.members });
      break;
    }
    case "ipset-remove":
      state.ipsets.delete(msg.id);
      break;
    case "policy-update":
      state.policies.set(msg.policy.id, msg.policy);
      break;
    case "policy-remove":
      state.policies.delete(msg.id);
      break;
    case "profile-update":
      state.profiles.set(msg.profile.id, msg.profile);
      break;
    case "profile-remove":
      state.profiles.delete(msg.id);
      break;
    case "endpoint-update":
      state.endpoints.set(msg.endpoint.id, msg.endpoint);
      break;
    case "endpoint-remove":
      state.endpoints.delete(msg.id);
      break;
    case "route-update":
      state.routes.set(msg.route.dst, msg.route);
      break;
    case "route-remove":
      state.routes.delete(msg.dst);
      break;
    case "in-sync":
      state.inSync = true;
      break;
  }
  return state;
}

/** Ids of the entries that messages changed (or removed), per map. */
export interface ChangedIds {
  ipsets: Set<string>;
  policies: Set<string>;
  profiles: Set<string>;
  endpoints: Set<string>;
}

export function emptyChangedIds(): ChangedIds {
  return { ipsets: new Set(), policies: new Set(), profiles: new Set(), endpoints: new Set() };
}

/**
 * Notes the id of the entry `msg` changes (routes and in-sync touch none of
 * these maps) and returns `changed` (so `msgs.reduce(noteChangedIds, c)`).
 */
export function noteChangedIds(changed: ChangedIds, msg: DataplaneMessage): ChangedIds {
  switch (msg.type) {
    case "ipset-update":
      changed.ipsets.add(msg.ipset.id);
      break;
    case "ipset-delta":
    case "ipset-remove":
      changed.ipsets.add(msg.id);
      break;
    case "policy-update":
      changed.policies.add(msg.policy.id);
      break;
    case "policy-remove":
      changed.policies.add(msg.id);
      break;
    case "profile-update":
      changed.profiles.add(msg.profile.id);
      break;
    case "profile-remove":
      changed.profiles.add(msg.id);
      break;
    case "endpoint-update":
      changed.endpoints.add(msg.endpoint.id);
      break;
    case "endpoint-remove":
      changed.endpoints.add(msg.id);
      break;
    case "route-update":
    case "route-remove":
    case "in-sync":
      break;
  }
  return changed;
}
