import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const output = fileURLToPath(new URL('../src/output.ts', import.meta.url));

/** A process that writes plenty to a stdout whose reader has gone, then says on stderr whether it got past that. */
function writeToClosedPipe(survive: boolean): Promise<{ code: number | null; stderr: string }> {
  const script = `
    ${survive ? `const { surviveClosedOutput } = await import(${JSON.stringify(output)}); surviveClosedOutput();` : ''}
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 10000; i++) process.stdout.write('line ' + i + '\\n');
    await new Promise((r) => setTimeout(r, 200));
    process.stderr.write('cleaned up\\n');`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

describe('output piped into a reader that stops early', () => {
  it('no longer ends the run before its cleanup', async () => {
    expect(await writeToClosedPipe(true)).toEqual({ code: 0, stderr: 'cleaned up\n' });
  });

  it('would, without it', async () => {
    const { code, stderr } = await writeToClosedPipe(false);
    expect(code).not.toBe(0);
    expect(stderr).not.toContain('cleaned up');
  });
});
