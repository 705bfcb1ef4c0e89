// zod as the CNI plugin's bundle sees it (build-bundle.ts points `zod` here).
// The schemas in src/api write `import { z } from "zod"`, and zod's `z` is a
// namespace that brings all of zod along: fifty locales, JSON Schema in both
// directions, ~0.5 MB that a bundler cannot trim from a namespace object.
// Named imports it can trim; this `z` holds just the builders the schemas
// call (zod-lean.test.ts checks that against the built src/api).
//
// Also "jitless": zod compiles a fast parser for each object schema (with
// `new Function`) on its first parse, which pays off over many parses; a
// plugin call parses each schema once or twice. Set before any schema is
// built, since schemas read it when built: this module is evaluated first.
import {
  NEVER,
  array,
  boolean,
  config,
  enum as zodEnum,
  int,
  literal,
  number,
  record,
  strictObject,
  string,
  union,
  unknown,
} from "zod/v4";

config({ jitless: true });

export const z = {
  NEVER,
  array,
  boolean,
  enum: zodEnum,
  int,
  literal,
  number,
  record,
  strictObject,
  string,
  union,
  unknown,
};
