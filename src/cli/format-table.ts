// Renders rows as a kubectl-style table: upper-case headers, left-aligned
// columns padded to the widest cell, three spaces between columns and no
// trailing blanks. Pure.

const GAP = "   ";

function clean(cell: string): string {
  // A stray newline or tab in a value would break the columns.
  return cell.replace(/[\r\n\t]+/g, " ");
}

/** The table as text, one line per row (header first), each ending in "\n". */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const lines = [
    headers.map((h) => clean(h).toUpperCase()),
    ...rows.map((r) => headers.map((_, i) => clean(r[i] ?? ""))),
  ];
  const widths = headers.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? "").length)));
  return lines
    .map((cells) =>
      cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join(GAP)
        .trimEnd(),
    )
    .map((l) => `${l}\n`)
    .join("");
}
