/**
 * Output piped into a reader that stops early (`pnpm bench | head`): without this the first write to
 * the closed pipe crashes the process before it stops its services and drops its database. The rest
 * of the output is dropped instead, and the run goes on to its cleanup.
 */
export function surviveClosedOutput(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}
