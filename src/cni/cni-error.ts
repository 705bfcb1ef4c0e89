// CNI error codes and the error object the plugin prints on failure.
//
// Codes 0-99 are the CNI specification's (SPEC.md "Error"); 100 and up are
// twill's own. Every failure leaves the plugin as one of these: a TwillError
// from a library below is translated by its stable code (cniErrorFrom), so
// the runtime can tell "retry later" (11) from "fix your config" (7).
import { TwillError } from "../util/errors.js";

export const CNI_ERROR = {
  /** The config's cniVersion is not one the plugin supports. */
  incompatibleVersion: 1,
  /** A config field the plugin does not support (message names key and value). */
  unsupportedField: 2,
  /** The container is unknown or gone: no DEL needed. */
  unknownContainer: 3,
  /** A required CNI_* environment variable is missing or invalid (message names it). */
  invalidEnvironment: 4,
  /** An I/O failure, e.g. reading stdin. */
  io: 5,
  /** The config on stdin could not be decoded (not JSON, not an object). */
  decode: 6,
  /** The network config is invalid. */
  invalidConfig: 7,
  /** A transient condition: the runtime should try again later. */
  tryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD now. */
  notAvailable: 50,
  /** STATUS: not available, and existing workloads may have limited connectivity. */
  limitedConnectivity: 51,
  /** twill: no free address in any pool this host may use. */
  addressesExhausted: 100,
  /** twill: the interface to create already exists (ADD twice without DEL, or a name clash). */
  interfaceExists: 101,
  /** twill: CHECK found the attachment differing from prevResult (details list each difference). */
  checkFailed: 102,
  /** The reference library's code for a CNI_NETNS that is the plugin's own namespace. */
  invalidNetns: 8,
  /** Anything unexpected (as the reference library's ErrInternal). */
  internal: 999,
} as const;

export type CniErrorCode = (typeof CNI_ERROR)[keyof typeof CNI_ERROR];

/** A failure with its CNI code; `msg` is short, `details` says what and why. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;

  constructor(code: number, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }
}

/** The error object printed on stdout: `{cniVersion, code, msg, details?}`. */
export interface CniErrorObject {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function errorObject(err: CniError, cniVersion: string): CniErrorObject {
  const out: CniErrorObject = { cniVersion, code: err.code, msg: err.message };
  if (err.details !== undefined && err.details !== "") out.details = err.details;
  return out;
}

/**
 * Translate any failure into a CniError. `what` is the step that failed
 * ("assigning an address"), kept as the short msg; the cause's message goes
 * to details.
 */
export function cniErrorFrom(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof TwillError) {
    switch (err.code) {
      case "Unavailable":
      case "Timeout":
      case "Conflict":
      case "Compacted":
        return new CniError(CNI_ERROR.tryAgainLater, what, message, { cause: err });
      case "Invalid":
      case "NotFound":
        return new CniError(CNI_ERROR.invalidConfig, what, message, { cause: err });
      case "Exhausted":
        return new CniError(CNI_ERROR.addressesExhausted, what, message, { cause: err });
      case "AlreadyExists":
        return new CniError(CNI_ERROR.interfaceExists, what, message, { cause: err });
      case "Aborted":
      case "Internal":
        break;
    }
  }
  return new CniError(CNI_ERROR.internal, what, message, { cause: err });
}
