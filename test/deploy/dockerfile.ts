// A small Dockerfile reader for the tests: instructions grouped into build stages, with line
// continuations joined and comments dropped. Enough for the Dockerfile this repository ships;
// heredocs and parser directives other than comments are not supported.

export interface Instruction {
  /** Upper-cased: FROM, RUN, COPY, ... */
  keyword: string;
  /** The rest of the instruction, continuations joined with a space. */
  args: string;
  /** 1-based line the instruction starts on, for messages. */
  line: number;
}

export interface Stage {
  /** The image the stage starts from. */
  from: string;
  /** `AS name`, if given. */
  name?: string;
  instructions: Instruction[];
}

export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { parts: string[]; line: number } | undefined;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && !pending)) continue;
    const continued = line.endsWith('\\');
    const part = continued ? line.slice(0, -1).trim() : line;
    pending ??= { parts: [], line: i + 1 };
    if (part) pending.parts.push(part);
    if (continued) continue;
    const [keyword = '', ...rest] = pending.parts.join(' ').split(/\s+/);
    out.push({ keyword: keyword.toUpperCase(), args: rest.join(' '), line: pending.line });
    pending = undefined;
  }
  if (pending) throw new Error(`Dockerfile line ${pending.line}: the last instruction ends with a line continuation`);
  return out;
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: cannot read FROM ${ins.args}`);
      stages.push({ from: m[1]!, ...(m[2] ? { name: m[2] } : {}), instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before the first FROM`);
    stage.instructions.push(ins);
  }
  return stages;
}

/** The argument vector of an exec-form (JSON array) CMD/ENTRYPOINT/HEALTHCHECK CMD; undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
    throw new Error(`not an exec form: ${args}`);
  return parsed;
}

export interface Copy {
  /** `--from=` stage or image; undefined when copying from the build context. */
  from?: string;
  sources: string[];
  dest: string;
}

/** A COPY instruction's flags, sources and destination (shell form only, as shipped). */
export function parseCopy(args: string): Copy {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  if (paths.length < 2) throw new Error(`COPY ${args}: needs a source and a destination`);
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { ...(from ? { from } : {}), sources: paths.slice(0, -1), dest: paths.at(-1)! };
}
