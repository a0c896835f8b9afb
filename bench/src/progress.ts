/**
 * One progress line on stderr while a benchmark runs: rewritten in place on a terminal, a new line
 * every few seconds otherwise (CI logs), so stdout carries only the result tables.
 */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private timer: NodeJS.Timeout | undefined;
  private lastPrinted = 0;
  private text = '';

  constructor(private readonly label: string) {}

  /** Starts refreshing from `status()` until `done()`. */
  track(status: () => string): void {
    this.stop();
    this.timer = setInterval(() => this.update(status()), 250);
    this.timer.unref();
  }

  update(text: string): void {
    this.text = `[${this.label}] ${text}`;
    const now = Date.now();
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${this.text}`);
    } else if (now - this.lastPrinted >= 5000) {
      process.stderr.write(`${this.text}\n`);
      this.lastPrinted = now;
    }
  }

  /** Prints a line that stays (a phase finished). */
  note(text: string): void {
    this.stop();
    if (this.tty) process.stderr.write('\r\x1b[2K');
    process.stderr.write(`[${this.label}] ${text}\n`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
