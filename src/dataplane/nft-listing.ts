// Reading twill's table back: `nft list table inet twill` parsed into the
// renderer's own structure (RenderedRuleset), so what the kernel holds can be
// compared with what the renderer wants, and renderDelta can go from the
// kernel's state to the desired one. The renderer writes rules, elements and
// comments exactly as nft prints them, which is what makes this a plain
// parse and an equality check, with no normalising of nft's grammar.
//
// The listing's shape (tabs are significant):
//
//   table inet twill {
//   <TAB>set NAME {                  also: map NAME {
//   <TAB><TAB>type ipv4_addr
//   <TAB><TAB>flags interval
//   <TAB><TAB>comment "…"
//   <TAB><TAB>elements = { a, b,     continued on lines indented deeper
//   <TAB><TAB><TAB>     c }
//   <TAB>}
//   <TAB>chain NAME {
//   <TAB><TAB>comment "…"
//   <TAB><TAB>type filter hook input priority filter; policy accept;
//   <TAB><TAB><rule>                 one per line
//   <TAB>}
//   }
//
// One exception to "no normalising": protocol numbers. nft prints a protocol
// by the name the machine's /etc/protocols gives it (getprotobynumber: 47 as
// "gre", 132 as "sctp") and by number only when there is none, while the
// renderer writes numbers except for the few names nft's grammar knows as
// keywords (input must parse on any machine). So the protocol after
// `meta l4proto` (alone, after `!=` or in `{ … }`) and the protocol field of
// named-port set elements are mapped back to the renderer's text: a name
// through the table below (Debian netbase's /etc/protocols), a number through
// protocolText. A name missing from the table is left alone: the object then
// reads as changed and is rewritten, never wrongly taken as unchanged.
//
// Anything else in an object (a set's size, timeout, counters, a chain's
// device) is kept under `extra`, so it makes the comparison fail and the
// driver rewrites the object: the table is ours alone.
import { TwillError } from "../util/errors.js";
import { protocolText } from "./render-nft.js";
import type { BaseChain, RenderedRuleset, RenderedSet } from "./render-nft.js";

/** A parsed listing, with what the renderer never writes. */
export interface ParsedListing {
  ruleset: RenderedRuleset;
  /** "set s4-x: size 65535" and the like. */
  extra: string[];
}

const BASE_SPEC =
  /^type (filter|nat) hook (prerouting|input|forward|output|postrouting) priority (raw|mangle|filter|srcnat); policy (accept);$/;

/** Protocol names nft may print (glibc getprotobynumber over netbase's /etc/protocols). */
const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  ip: 0,
  hopopt: 0,
  icmp: 1,
  igmp: 2,
  ggp: 3,
  ipencap: 4,
  st: 5,
  tcp: 6,
  egp: 8,
  igp: 9,
  pup: 12,
  udp: 17,
  hmp: 20,
  "xns-idp": 22,
  rdp: 27,
  "iso-tp4": 29,
  dccp: 33,
  xtp: 36,
  ddp: 37,
  "idpr-cmtp": 38,
  ipv6: 41,
  "ipv6-route": 43,
  "ipv6-frag": 44,
  idrp: 45,
  rsvp: 46,
  gre: 47,
  esp: 50,
  ah: 51,
  skip: 57,
  "ipv6-icmp": 58,
  "ipv6-nonxt": 59,
  "ipv6-opts": 60,
  rspf: 73,
  vmtp: 81,
  eigrp: 88,
  ospf: 89,
  "ax.25": 93,
  ipip: 94,
  etherip: 97,
  encap: 98,
  pim: 103,
  ipcomp: 108,
  vrrp: 112,
  l2tp: 115,
  isis: 124,
  sctp: 132,
  fc: 133,
  "mobility-header": 135,
  udplite: 136,
  "mpls-in-ip": 137,
  manet: 138,
  hip: 139,
  shim6: 140,
  wesp: 141,
  rohc: 142,
  ethernet: 143,
};

/** A protocol as nft printed it (name or number) in the renderer's text; unknown names unchanged. */
function canonicalProtocol(token: string): string {
  const n = /^[0-9]{1,3}$/.test(token) ? Number(token) : PROTOCOL_NUMBERS[token];
  return n === undefined || n > 255 ? token : protocolText(n);
}

const L4PROTO = /meta l4proto (!= )?(\{ [^}]* \}|[^\s{}]+)/g;

/**
 * A rule with its `meta l4proto` protocols in the renderer's text (see the
 * file header). Quoted strings (comments, log prefixes) are left alone.
 */
export function normaliseProtocols(rule: string): string {
  if (!rule.includes("meta l4proto")) return rule;
  // Odd pieces of a split on quotes are inside a string.
  return rule
    .split('"')
    .map((piece, i) =>
      i % 2 === 1
        ? piece
        : piece.replace(L4PROTO, (_all, not: string | undefined, value: string) => {
            const text = value.startsWith("{")
              ? `{ ${value
                  .slice(1, -1)
                  .split(",")
                  .map((p) => canonicalProtocol(p.trim()))
                  .join(", ")} }`
              : canonicalProtocol(value);
            return `meta l4proto ${not ?? ""}${text}`;
          }),
    )
    .join('"');
}

/** Elements of a set whose type has an inet_proto field, with that field in the renderer's text. */
function normaliseProtocolElements(type: string, elements: string[]): string[] {
  const fields = type.split(" . ");
  const at = fields.indexOf("inet_proto");
  if (at < 0) return elements;
  return elements.map((e) => {
    const parts = e.split(" . ");
    if (parts.length !== fields.length) return e;
    parts[at] = canonicalProtocol(parts[at] ?? "");
    return parts.join(" . ");
  });
}

function parseElements(text: string): string[] {
  // text: "elements = { a, b, c }" (joined from its lines).
  const m = /^elements = \{ (.*) \}$/s.exec(text.trim());
  if (!m) throw new TwillError("Invalid", `cannot read nft elements: ${text.slice(0, 80)}`);
  return (m[1] ?? "")
    .split(/,\s*/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Parses the text of `nft list table inet twill` (or a full transaction's table block). */
export function parseNftListing(text: string): ParsedListing {
  const ruleset: RenderedRuleset = {
    chains: new Map(),
    base: new Map(),
    comments: new Map(),
    sets: new Map(),
    maps: new Map(),
  };
  const extra: string[] = [];
  const lines = text.split("\n");
  let i = lines.findIndex((l) => /^table inet twill \{$/.test(l));
  if (i < 0) throw new TwillError("Invalid", "nft listing does not contain table inet twill");
  i++;
  const fail = (why: string): never => {
    throw new TwillError(
      "Invalid",
      `cannot read nft listing at line ${i + 1}: ${why}: ${JSON.stringify(lines[i] ?? "")}`,
    );
  };
  for (; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line === "}") return { ruleset, extra };
    if (line.trim() === "") continue;
    const head = /^\t(set|map|chain) (\S+) \{$/.exec(line);
    if (!head) {
      // Table-level attributes (a comment, flags) are not ours.
      if (/^\t\S/.test(line)) {
        extra.push(`table: ${line.trim()}`);
        continue;
      }
      fail("expected a set, map or chain");
    }
    const what = head?.[1] as "set" | "map" | "chain";
    const name = head?.[2] ?? "";
    // Collect the object's body lines, joining continuation lines (deeper indent).
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== "\t}"; i++) {
      const l = lines[i] ?? "";
      if (l.startsWith("\t\t\t")) {
        if (body.length === 0) fail("continuation line without a start");
        body[body.length - 1] += ` ${l.trim()}`;
      } else if (l.startsWith("\t\t")) body.push(l.slice(2));
      else if (l.trim() !== "") fail(`unexpected line in ${what} ${name}`);
    }
    if (i >= lines.length) fail(`${what} ${name} is not closed`);
    if (what === "chain") {
      const rules: string[] = [];
      for (const l of body) {
        if (
          rules.length === 0 &&
          l.startsWith("comment ") &&
          !ruleset.comments.has(name) &&
          !ruleset.base.has(name)
        ) {
          ruleset.comments.set(name, l.slice("comment ".length));
          continue;
        }
        const b = rules.length === 0 ? BASE_SPEC.exec(l) : null;
        if (b) {
          ruleset.base.set(name, {
            type: b[1] as BaseChain["type"],
            hook: b[2] as BaseChain["hook"],
            priority: b[3] as BaseChain["priority"],
            policy: b[4] as BaseChain["policy"],
          });
          continue;
        }
        if (rules.length === 0 && /^type \S+ hook /.test(l)) {
          extra.push(`chain ${name}: ${l}`);
          continue;
        }
        rules.push(normaliseProtocols(l));
      }
      ruleset.chains.set(name, rules);
      continue;
    }
    let type: string | undefined;
    let flags: string[] = [];
    let comment: string | undefined;
    let elements: string[] = [];
    for (const l of body) {
      if (l.startsWith("type ")) type = l.slice(5);
      else if (l.startsWith("flags ")) flags = l.slice(6).split(",");
      else if (l.startsWith("comment ")) comment = l.slice(8);
      else if (l.startsWith("elements = ")) elements = parseElements(l);
      else extra.push(`${what} ${name}: ${l}`);
    }
    if (type === undefined) fail(`${what} ${name} has no type`);
    if (what === "set") {
      const s: RenderedSet = {
        type: type ?? "",
        flags,
        elements: normaliseProtocolElements(type ?? "", elements),
      };
      if (comment !== undefined) s.comment = comment;
      ruleset.sets.set(name, s);
    } else {
      if (flags.length > 0 || comment !== undefined) {
        extra.push(
          `map ${name}: ${flags.length > 0 ? `flags ${flags.join(",")}` : `comment ${comment}`}`,
        );
      }
      const map = new Map<string, string>();
      for (const e of elements) {
        const m = /^"([^"]*)" : (.+)$/.exec(e);
        if (!m) {
          extra.push(`map ${name}: element ${e}`);
          continue;
        }
        map.set(m[1] ?? "", m[2] ?? "");
      }
      ruleset.maps.set(name, { type: type ?? "", elements: map });
    }
  }
  return fail("table is not closed");
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

/**
 * The differences between what the kernel holds and what is wanted, as
 * short lines ("chain forward: rule 3 differs"); empty when they are the same.
 * Element order does not matter (the kernel sorts), rule order does.
 */
export function diffRulesets(
  kernel: RenderedRuleset,
  wanted: RenderedRuleset,
  limit = 20,
): string[] {
  const out: string[] = [];
  const add = (s: string) => {
    if (out.length < limit) out.push(s);
  };
  for (const [name, w] of wanted.sets) {
    const k = kernel.sets.get(name);
    if (!k) add(`set ${name}: missing`);
    else if (
      k.type !== w.type ||
      k.flags.join(",") !== w.flags.join(",") ||
      k.comment !== w.comment
    ) {
      add(`set ${name}: type, flags or comment differ`);
    } else if (sorted(k.elements).join(",") !== sorted(w.elements).join(",")) {
      add(`set ${name}: ${k.elements.length} elements, want ${w.elements.length}`);
    }
  }
  for (const name of kernel.sets.keys()) if (!wanted.sets.has(name)) add(`set ${name}: not wanted`);
  for (const [name, w] of wanted.maps) {
    const k = kernel.maps.get(name);
    if (!k) add(`map ${name}: missing`);
    else if (k.type !== w.type) add(`map ${name}: type differs`);
    else if (
      k.elements.size !== w.elements.size ||
      [...w.elements].some(([key, v]) => k.elements.get(key) !== v)
    ) {
      add(`map ${name}: elements differ`);
    }
  }
  for (const name of kernel.maps.keys()) if (!wanted.maps.has(name)) add(`map ${name}: not wanted`);
  for (const [name, rules] of wanted.chains) {
    const k = kernel.chains.get(name);
    if (!k) {
      add(`chain ${name}: missing`);
      continue;
    }
    const kb = kernel.base.get(name);
    const wb = wanted.base.get(name);
    if (JSON.stringify(kb) !== JSON.stringify(wb)) add(`chain ${name}: hook differs`);
    if (kernel.comments.get(name) !== wanted.comments.get(name))
      add(`chain ${name}: comment differs`);
    if (k.length !== rules.length) add(`chain ${name}: ${k.length} rules, want ${rules.length}`);
    else {
      const at = rules.findIndex((r, idx) => r !== k[idx]);
      if (at >= 0)
        add(
          `chain ${name}: rule ${at + 1} is ${JSON.stringify(k[at])}, want ${JSON.stringify(rules[at])}`,
        );
    }
  }
  for (const name of kernel.chains.keys())
    if (!wanted.chains.has(name)) add(`chain ${name}: not wanted`);
  return out;
}
