// Public surface of the resource API (`twill/api`).
export * from "./kinds.js";
export * from "./resource.js";
export * from "./ip.js";
export { parseDocuments } from "./parse-documents.js";
export type { ParsedDocument, ParseResult } from "./parse-documents.js";
export { validateResource, fieldErrors, formatPath, describeResource } from "./validate.js";
export type { ValidationResult } from "./validate.js";
export { SCHEMAS } from "./schemas/index.js";
