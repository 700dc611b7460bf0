// How CLI commands print: human tables by default, JSON with --json.

export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** Prints `data` as JSON when `json` is set, else the human rendering. */
  result(json: unknown, data: unknown, human: () => string): void;
}

export const stdio: Output = {
  out: (text) => {
    process.stdout.write(text);
  },
  err: (text) => {
    process.stderr.write(text);
  },
  result(json, data, human) {
    process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : human());
  },
};

export function table(header: string[], rows: string[][]): string {
  if (rows.length === 0) return '(none)\n';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
