// Reads the documents named by `-f` arguments: a file, a directory (every
// .yaml, .yml and .json file directly in it, sorted by name) or `-` for
// standard input. File access comes in through `InputFiles`, so tests run on
// an in-memory tree. Read and syntax errors are collected, not thrown, so a
// command can report every one of them before writing anything.
import path from "node:path";
import { parseDocuments } from "../api/parse-documents.js";
import type { ParseResult } from "../api/parse-documents.js";

export interface InputFiles {
  readFile(path: string): Promise<string>;
  /** The entry names of a directory, or undefined when `path` is not a directory. */
  readDir(path: string): Promise<string[] | undefined>;
  readStdin(): Promise<string>;
}

const MANIFEST = /\.(ya?ml|json)$/i;
export const STDIN_SOURCE = "<stdin>";

function reason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  if (e.code === "ENOENT") return "no such file or directory";
  if (e.code === "EACCES") return "permission denied";
  if (e.code === "EISDIR") return "is a directory";
  return typeof e.message === "string" ? e.message : String(err);
}

/** Every document in `paths`, in order, with all read and parse errors. */
export async function readInputs(
  paths: readonly string[],
  files: InputFiles,
): Promise<ParseResult> {
  const result: ParseResult = { documents: [], errors: [] };
  const add = (text: string, source: string) => {
    const parsed = parseDocuments(text, source);
    result.documents.push(...parsed.documents);
    result.errors.push(...parsed.errors);
  };
  let stdinRead = false;
  for (const p of paths) {
    if (p === "-") {
      if (stdinRead) {
        result.errors.push({
          source: STDIN_SOURCE,
          message: `"-" (standard input) can be given only once`,
        });
        continue;
      }
      stdinRead = true;
      try {
        add(await files.readStdin(), STDIN_SOURCE);
      } catch (err) {
        result.errors.push({
          source: STDIN_SOURCE,
          message: `cannot read standard input: ${reason(err)}`,
        });
      }
      continue;
    }
    try {
      const entries = await files.readDir(p);
      if (entries === undefined) {
        add(await files.readFile(p), p);
        continue;
      }
      const names = entries.filter((n) => MANIFEST.test(n)).sort();
      if (names.length === 0) {
        result.errors.push({ source: p, message: "directory holds no .yaml, .yml or .json files" });
      }
      for (const name of names) {
        const file = path.join(p, name);
        try {
          add(await files.readFile(file), file);
        } catch (err) {
          result.errors.push({ source: file, message: `cannot read: ${reason(err)}` });
        }
      }
    } catch (err) {
      result.errors.push({ source: p, message: `cannot read: ${reason(err)}` });
    }
  }
  return result;
}
