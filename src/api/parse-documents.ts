// Reads resource documents from text: YAML (one or many documents separated
// by ---) or JSON (an object or an array), with `kind: List` (and
// `kind: XxxList`) wrappers unwrapped. Pure: the caller reads the files.
import { parseAllDocuments } from "yaml";

export interface ParsedDocument {
  /** The document's content, or undefined for an empty document. */
  value: unknown;
  /** Where it came from: "file.yaml", "file.yaml#2", "file.yaml#2.items[0]". */
  source: string;
}

export interface ParseResult {
  documents: ParsedDocument[];
  /** Syntax errors, each with the source and position. */
  errors: { source: string; message: string }[];
}

function unwrap(value: unknown, source: string, out: ParsedDocument[]): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => unwrap(v, `${source}[${i}]`, out));
    return;
  }
  if (typeof value === "object" && value !== null) {
    const v = value as { kind?: unknown; items?: unknown };
    if (typeof v.kind === "string" && /List$/.test(v.kind) && Array.isArray(v.items)) {
      v.items.forEach((item, i) => unwrap(item, `${source}.items[${i}]`, out));
      return;
    }
  }
  out.push({ value, source });
}

/** Parses every document in `text`; `name` labels sources in messages. */
export function parseDocuments(text: string, name: string): ParseResult {
  const documents: ParsedDocument[] = [];
  const errors: ParseResult["errors"] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const source = list.length > 1 ? `${name}#${i + 1}` : name;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) errors.push({ source, message: e.message });
      return;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // empty document
    unwrap(value, source, documents);
  });
  return { documents, errors };
}
