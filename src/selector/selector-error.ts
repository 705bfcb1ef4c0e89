// The one error the selector parser throws. It is a TwillError with code
// "Invalid", so boundaries (CLI exit codes, validation paths) treat it like any
// other invalid input, and it says exactly where parsing stopped and what it
// wanted there.

import { TwillError } from "../util/errors.js";

export class SelectorError extends TwillError {
  /** The selector text as given. */
  readonly selector: string;
  /** 0-based offset into `selector` (in UTF-16 code units) where parsing stopped. */
  readonly position: number;
  /** What the parser expected at `position`, e.g. `a quoted string`. */
  readonly expected: string;

  constructor(selector: string, position: number, expected: string) {
    super(
      "Invalid",
      `selector ${JSON.stringify(selector)} at position ${position}: expected ${expected}`,
    );
    this.name = "SelectorError";
    this.selector = selector;
    this.position = position;
    this.expected = expected;
  }
}
