// Value types of the agent's config table (config.ts): how one setting is
// read from text (a flag or an environment variable) and from a typed value
// (a YAML/JSON config file or a FelixConfiguration field), and how it is
// shown in the generated reference.
//
// Every parser throws a plain Error whose message says what is wrong with
// the value; config.ts adds the source and the field's name.
import { formatCIDR, parseCIDR } from "../api/ip.js";
import { parseDuration } from "../api/schemas/common.js";
import type { FailsafePort } from "../api/schemas/felix-configuration.js";

export interface ValueType<T> {
  /** The type as the reference shows it: `integer (1-65535)`, `duration`. */
  readonly describe: string;
  /** From a flag or an environment variable. */
  fromText(text: string): T;
  /** From a config file or FelixConfiguration, where values are typed JSON. */
  fromValue(value: unknown): T;
  /** For the reference docs and the start-up log line. */
  format(value: T): string;
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

export function stringType(options: { pattern?: RegExp; rule?: string } = {}): ValueType<string> {
  const check = (s: string): string => {
    if (options.pattern && !options.pattern.test(s)) {
      throw new Error(`"${s}" is invalid: ${options.rule ?? `must match ${options.pattern}`}`);
    }
    return s;
  };
  return {
    describe: "string",
    fromText: check,
    fromValue: (v) => {
      if (typeof v !== "string") throw new Error(`expected a string, got ${show(v)}`);
      return check(v);
    },
    format: (v) => v,
  };
}

export function integerType(min: number, max: number): ValueType<number> {
  const check = (n: number, original: unknown): number => {
    if (!Number.isInteger(n)) throw new Error(`${show(original)} is not an integer`);
    if (n < min || n > max) throw new Error(`${n} is outside ${min}-${max}`);
    return n;
  };
  return {
    describe: `integer (${min}-${max})`,
    fromText: (text) => {
      const t = text.trim();
      const n = /^0x[0-9a-f]+$/i.test(t)
        ? parseInt(t.slice(2), 16)
        : /^-?[0-9]+$/.test(t)
          ? Number(t)
          : Number.NaN;
      return check(n, text);
    },
    fromValue: (v) => {
      if (typeof v !== "number") throw new Error(`expected a number, got ${show(v)}`);
      return check(v, v);
    },
    format: (v) => String(v),
  };
}

export function booleanType(): ValueType<boolean> {
  return {
    describe: "boolean",
    fromText: (text) => {
      const t = text.trim().toLowerCase();
      if (["true", "1", "yes"].includes(t)) return true;
      if (["false", "0", "no"].includes(t)) return false;
      throw new Error(`"${text}" is not a boolean: use true or false`);
    },
    fromValue: (v) => {
      if (typeof v !== "boolean") throw new Error(`expected true or false, got ${show(v)}`);
      return v;
    },
    format: (v) => String(v),
  };
}

/** A Go-style duration ("90s", "1m30s", "250ms") or a number of seconds; kept as milliseconds. */
export function durationType(): ValueType<number> {
  const fromText = (text: string): number => {
    const t = text.trim();
    const ms = /^[0-9]+(\.[0-9]+)?$/.test(t) ? Number(t) * 1000 : parseDuration(t);
    if (ms === undefined) {
      throw new Error(
        `"${text}" is not a duration: use a number with a unit (ms, s, m, h), e.g. "90s", or a number of seconds`,
      );
    }
    return Math.round(ms);
  };
  return {
    describe: "duration",
    fromText,
    fromValue: (v) => {
      if (typeof v === "number" && v >= 0) return Math.round(v * 1000);
      if (typeof v !== "string") throw new Error(`expected a duration, got ${show(v)}`);
      return fromText(v);
    },
    format: formatDuration,
  };
}

/** "90s", "1m30s", "50ms", "0s". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000 || ms % 1000 !== 0) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
}

/** One of `values`, matched without regard to case, returned as written in `values`. */
export function enumType<const V extends string>(values: readonly V[]): ValueType<V> {
  const fromText = (text: string): V => {
    const found = values.find((v) => v.toLowerCase() === text.trim().toLowerCase());
    if (found === undefined) {
      throw new Error(`"${text}" is not one of ${values.join(", ")}`);
    }
    return found;
  };
  return {
    describe: values.map((v) => `"${v}"`).join(" \\| "),
    fromText,
    fromValue: (v) => {
      if (typeof v !== "string")
        throw new Error(`expected one of ${values.join(", ")}, got ${show(v)}`);
      return fromText(v);
    },
    format: (v) => v,
  };
}

/** A comma-separated list in text, a list (or comma-separated string) in files. */
export function listType(item: { pattern: RegExp; rule: string }): ValueType<string[]> {
  const check = (items: string[]): string[] => {
    for (const s of items) {
      if (!item.pattern.test(s)) throw new Error(`"${s}" is invalid: ${item.rule}`);
    }
    return items;
  };
  const split = (text: string) =>
    text
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  return {
    describe: "comma-separated list",
    fromText: (text) => check(split(text)),
    fromValue: (v) => {
      if (typeof v === "string") return check(split(v));
      if (Array.isArray(v) && v.every((s): s is string => typeof s === "string")) {
        return check(v.map((s) => s.trim()));
      }
      throw new Error(`expected a list of strings, got ${show(v)}`);
    },
    format: (v) => v.join(","),
  };
}

/** An address with its prefix length ("10.0.0.1/24"), of one family; kept as written. */
export function addressType(family: 4 | 6): ValueType<string> {
  const check = (text: string): string => {
    const t = text.trim();
    const cidr = parseCIDR(t, { allowBareIP: true });
    if (!cidr || cidr.family !== family) {
      throw new Error(
        `"${text}" is not an IPv${family} address${family === 4 ? ' such as "10.0.0.1/24"' : ' such as "fd00::1/64"'}`,
      );
    }
    return t.includes("/") ? t : formatCIDR(cidr);
  };
  return {
    describe: `IPv${family} address/prefix`,
    fromText: check,
    fromValue: (v) => {
      if (typeof v !== "string") throw new Error(`expected an address, got ${show(v)}`);
      return check(v);
    },
    format: (v) => v,
  };
}

const PROTOCOLS = ["TCP", "UDP", "SCTP"] as const;

function failsafeFromText(part: string): FailsafePort {
  // "tcp:22" or "tcp:10.0.0.0/8:2379" (Felix's text form).
  const p = part.trim();
  const first = p.indexOf(":");
  const last = p.lastIndexOf(":");
  if (first < 0) throw new Error(`"${part}" is not a port: use protocol:port, e.g. tcp:22`);
  const protocol = p.slice(0, first).toUpperCase();
  const net = first === last ? undefined : p.slice(first + 1, last);
  return checkFailsafe({ protocol, port: Number(p.slice(last + 1)), net }, part);
}

function checkFailsafe(
  raw: { protocol: unknown; port: unknown; net: unknown },
  what: string,
): FailsafePort {
  const protocol = typeof raw.protocol === "string" ? raw.protocol.toUpperCase() : raw.protocol;
  if (!PROTOCOLS.includes(protocol as FailsafePort["protocol"])) {
    throw new Error(`${what}: protocol ${show(raw.protocol)} is not TCP, UDP or SCTP`);
  }
  const port = raw.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${what}: port ${show(port)} is not a number within 1-65535`);
  }
  const out: FailsafePort = { protocol: protocol as FailsafePort["protocol"], port };
  if (raw.net !== undefined) {
    const cidr =
      typeof raw.net === "string" ? parseCIDR(raw.net, { allowBareIP: true }) : undefined;
    if (!cidr) throw new Error(`${what}: net ${show(raw.net)} is not a CIDR`);
    out.net = formatCIDR(cidr);
  }
  return out;
}

/** Failsafe ports: "tcp:22,udp:68,tcp:10.0.0.0/8:2379" or "none" in text; Calico's list of objects in files. */
export function failsafePortsType(): ValueType<FailsafePort[]> {
  return {
    describe: "list of protocol:[net:]port",
    fromText: (text) => {
      if (text.trim().toLowerCase() === "none") return [];
      return text
        .split(",")
        .filter((s) => s.trim() !== "")
        .map(failsafeFromText);
    },
    fromValue: (v) => {
      if (!Array.isArray(v)) throw new Error(`expected a list of ports, got ${show(v)}`);
      return v.map((item: unknown, i) => {
        if (typeof item !== "object" || item === null) {
          throw new Error(`[${i}]: expected {protocol, port, net?}, got ${show(item)}`);
        }
        const o = item as Record<string, unknown>;
        return checkFailsafe(
          { protocol: o["protocol"] ?? "TCP", port: o["port"], net: o["net"] },
          `[${i}]`,
        );
      });
    },
    format: (v) =>
      v.length === 0
        ? "none"
        : v
            .map(
              (p) =>
                `${p.protocol.toLowerCase()}:${p.net === undefined ? "" : `${p.net}:`}${p.port}`,
            )
            .join(","),
  };
}

/** Makes a type optional: absent unless given. */
export function optional<T>(type: ValueType<T>): ValueType<T | undefined> {
  return {
    describe: type.describe,
    fromText: (t) => type.fromText(t),
    fromValue: (v) => type.fromValue(v),
    format: (v) => (v === undefined ? "" : type.format(v)),
  };
}

/** An AS number: "64512" or asdot "1.10"; kept as a number. */
export function asNumberType(): ValueType<number> {
  const fromText = (text: string): number => {
    const t = text.trim();
    let n = Number.NaN;
    if (/^[0-9]+$/.test(t)) n = Number(t);
    const dot = /^([0-9]+)\.([0-9]+)$/.exec(t);
    if (dot && Number(dot[1]) <= 65535 && Number(dot[2]) <= 65535) {
      n = Number(dot[1]) * 65536 + Number(dot[2]);
    }
    if (!(n >= 1 && n <= 4294967295)) {
      throw new Error(`"${text}" is not an AS number (1-4294967295, or asdot such as 1.10)`);
    }
    return n;
  };
  return {
    describe: "AS number",
    fromText,
    fromValue: (v) => {
      if (typeof v === "number") return fromText(String(v));
      if (typeof v === "string") return fromText(v);
      throw new Error(`expected an AS number, got ${show(v)}`);
    },
    format: (v) => String(v),
  };
}
