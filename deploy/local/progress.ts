/** A step-by-step progress display: a spinner on a terminal, plain numbered lines otherwise. */

/** Thrown by a step that does not apply: shown as skipped, with the reason, and `step` resolves undefined. */
export class Skip extends Error {}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export interface Progress {
  /** Runs one step; its result's `detail` (or the string it returns) is shown when it is done. */
  step<T>(title: string, run: (update: (text: string) => void) => Promise<T>, detail?: (value: T) => string): Promise<T>;
  /** Like `step`, but the run may throw {@link Skip}. */
  optionalStep<T>(title: string, run: (update: (text: string) => void) => Promise<T>, detail?: (value: T) => string): Promise<T | undefined>;
  /** Free text between steps (tables, notes). */
  print(text?: string): void;
  heading(text: string): void;
}

export function progress(out: NodeJS.WriteStream = process.stdout): Progress {
  const tty = Boolean(out.isTTY) && !process.env.NO_COLOR;
  const paint = (code: number, text: string) => (tty ? `\u001b[${code}m${text}\u001b[0m` : text);
  let n = 0;
  const self: Progress = {
    async optionalStep(title, run, detail) {
      try {
        return await self.step(title, run, detail);
      } catch (err) {
        if (err instanceof Skip) return undefined;
        throw err;
      }
    },
    async step(title, run, detail) {
      n += 1;
      const label = `${String(n).padStart(2)}. ${title}`;
      let note = '';
      let frame = 0;
      let timer: NodeJS.Timeout | undefined;
      // One terminal row, so the next frame overwrites all of it.
      const fit = (text: string) => (text.length > (out.columns || 80) - 3 ? `${text.slice(0, (out.columns || 80) - 4)}…` : text);
      const draw = () => {
        const text = fit(`${label}${note ? ` — ${note}` : ''}`);
        out.write(`\r\u001b[2K${paint(36, FRAMES[frame++ % FRAMES.length]!)} ${text.slice(0, label.length)}${paint(90, text.slice(label.length))}`);
      };
      if (tty) {
        draw();
        timer = setInterval(draw, 80);
      } else {
        out.write(`${label} …\n`);
      }
      const update = (text: string) => {
        if (!tty && text !== note) out.write(`    ${text}\n`);
        note = text;
      };
      try {
        const value = await run(update);
        const text = detail ? detail(value) : typeof value === 'string' ? value : '';
        if (timer) clearInterval(timer);
        if (tty) out.write(`\r\u001b[2K${paint(32, '✔')} ${label}${text ? paint(90, ` — ${text}`) : ''}\n`);
        else out.write(`    done${text ? `: ${text}` : ''}\n`);
        return value;
      } catch (err) {
        if (timer) clearInterval(timer);
        if (err instanceof Skip) {
          if (tty) out.write(`\r\u001b[2K${paint(33, '–')} ${label}${paint(33, ` — skipped: ${err.message}`)}\n`);
          else out.write(`    skipped: ${err.message}\n`);
        } else if (tty) out.write(`\r\u001b[2K${paint(31, '✖')} ${label}\n`);
        else out.write(`    failed\n`);
        throw err;
      }
    },
    print(text = '') {
      out.write(`${text}\n`);
    },
    heading(text) {
      out.write(`\n${tty ? `\u001b[1m${text}\u001b[0m` : text}\n`);
    },
  };
  return self;
}

/** A plain text table with right-aligned numeric columns. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, numeric: ReadonlySet<number> = new Set()): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    '  ' + cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), '  ' + widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
