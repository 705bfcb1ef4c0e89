// `twill lab check`'s text: a grid of what every probe saw, sources down
// and destinations across, each cell one symbol per probe (TCP, then ping;
// IPv4 then IPv6 in a dual-stack lab), a "!" after any that is not what the
// policy says, then the mismatches listed with what policy says and why.
// Pure: colours are ANSI sequences, on request only.
//
//   Lab "demo": tcp/80 and ping between 8 workloads
//   policy in force (etcd revision 57): GlobalNetworkPolicy tenant-isolation
//   each cell: tcp ping as probed; ✓ got through, ✗ blocked, ! not what the policy says
//
//   from \ to            h1w1   h1w2   h2w1   ...
//   h1w1  tenant=a,app=web  ·    ✗ ✗    ✓ ✓
//   ...
//   ✓ all 112 probes are as the policy says
import type { CheckResult, LabCheckReport } from "./lab-check-plan.js";
import { verdictReason } from "./lab-check-plan.js";

export interface RenderCheckOptions {
  /** ANSI colours (a terminal that wants them). */
  color?: boolean;
}

const ALLOW = "✓";
const DENY = "✗";
const NOT_PROBED = "·";

type Style = "allow" | "deny" | "mismatch" | "bold" | "plain";

const SGR: Record<Style, string> = {
  allow: "\x1b[32m",
  deny: "\x1b[31m",
  mismatch: "\x1b[1;7;31m",
  bold: "\x1b[1m",
  plain: "",
};

interface Segment {
  text: string;
  style: Style;
}

function paint(segments: readonly Segment[], color: boolean): string {
  return segments
    .map((s) => (color && s.style !== "plain" ? `${SGR[s.style]}${s.text}\x1b[0m` : s.text))
    .join("");
}

const width = (segments: readonly Segment[]): number =>
  segments.reduce((n, s) => n + [...s.text].length, 0);

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([k]) => !k.startsWith("projectcalico.org/"))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

function probeText(r: CheckResult): string {
  const host = r.addr.includes(":") && r.port !== undefined ? `[${r.addr}]` : r.addr;
  return r.proto === "tcp" ? `tcp ${host}:${r.port ?? ""}` : `ping ${r.addr}`;
}

const word = (ok: boolean): string => (ok ? "allow" : "deny");

/** What the probe saw: ✓ or ✗, a "!" when policy says otherwise. */
function symbol(r: CheckResult): Segment[] {
  const s = r.observed ? ALLOW : DENY;
  if (!r.matched) return [{ text: `${s}!`, style: "mismatch" }];
  return [
    { text: s, style: r.observed ? "allow" : "deny" },
    { text: " ", style: "plain" },
  ];
}

export function renderCheck(report: LabCheckReport, options: RenderCheckOptions = {}): string {
  const color = options.color ?? false;
  const names = report.workloads.map((w) => w.name);
  const order = (r: CheckResult): number => (r.family === 4 ? 0 : 2) + (r.proto === "tcp" ? 0 : 1);
  const cells = new Map<string, CheckResult[]>();
  for (const r of report.results) {
    const key = `${r.from}\n${r.to}`;
    cells.set(
      key,
      [...(cells.get(key) ?? []), r].sort((x, y) => order(x) - order(y)),
    );
  }
  const dual = report.families.length > 1;
  const kinds = dual ? "tcp ping tcp6 ping6" : "tcp ping";

  const rowHead = report.workloads.map((w): Segment[] => {
    const labels = labelText(w.labels);
    return [
      { text: w.name, style: "bold" },
      { text: labels === "" ? "" : `  ${labels}`, style: "plain" },
    ];
  });
  const corner: Segment[] = [{ text: "from \\ to", style: "plain" }];
  const headWidth = Math.max(width(corner), ...rowHead.map(width)) + 2;
  const cellFor = (from: string, to: string): Segment[] => {
    const list = cells.get(`${from}\n${to}`);
    if (from === to || list === undefined) return [{ text: NOT_PROBED, style: "plain" }];
    return list.flatMap(symbol);
  };
  const colWidth = Math.max(...names.map((n) => n.length), dual ? 8 : 4) + 2;
  const pad = (segments: Segment[], to: number): Segment[] => [
    ...segments,
    { text: " ".repeat(Math.max(0, to - width(segments))), style: "plain" },
  ];

  const lines: string[] = [];
  const families = dual ? " over IPv4 and IPv6" : "";
  lines.push(
    paint(
      [
        {
          text: `Lab "${report.lab}": tcp/${report.port} and ping${families} between ${names.length} workloads`,
          style: "bold",
        },
      ],
      color,
    ),
  );
  const policies =
    report.policies.length === 0
      ? "none (every workload's profile decides)"
      : report.policies.join(", ");
  lines.push(`policy in force (datastore revision ${report.revision}): ${policies}`);
  lines.push(
    `each cell: ${kinds}, as probed: ${paint([{ text: ALLOW, style: "allow" }], color)} got through, ${paint([{ text: DENY, style: "deny" }], color)} blocked, ${paint([{ text: "!", style: "mismatch" }], color)} not what the policy says`,
  );
  lines.push("");
  lines.push(
    paint(
      [
        ...pad(corner, headWidth),
        ...names.flatMap((n) => pad([{ text: n, style: "bold" }], colWidth)),
      ],
      color,
    ).trimEnd(),
  );
  report.workloads.forEach((w, i) => {
    const row: Segment[] = [...pad(rowHead[i] ?? [], headWidth)];
    for (const to of names) row.push(...pad(cellFor(w.name, to), colWidth));
    lines.push(paint(row, color).trimEnd());
  });
  lines.push("");

  const total = report.results.length;
  const bad = report.results.filter((r) => !r.matched);
  if (bad.length === 0) {
    lines.push(
      paint(
        [{ text: `${ALLOW} all ${total} probes are as the policy says`, style: "allow" }],
        color,
      ),
    );
  } else {
    lines.push(
      paint(
        [
          {
            text: `${DENY} ${bad.length} of ${total} probes are not as the policy says:`,
            style: "mismatch",
          },
        ],
        color,
      ),
    );
    for (const r of bad) {
      lines.push(
        `  ${r.from} → ${r.to}  ${probeText(r)}: policy says ${word(r.allowed)} (${verdictReason(r)}); probe: ${r.observed ? "got through" : "blocked"} (${r.detail}) after ${r.attempts} attempt${r.attempts === 1 ? "" : "s"}`,
      );
    }
  }
  if (report.note !== undefined) lines.push(`note: ${report.note}`);
  return `${lines.join("\n")}\n`;
}
