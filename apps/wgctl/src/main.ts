/**
 * wgctl entry point. Keep this file and cli.ts free of heavy imports: `wgctl --help` must
 * start about as fast as `node -e 0` (the commands load gRPC and friends when they run).
 */
/// <reference path="../../../libs/proto/src/build-globals.d.ts" />
import { runCli } from './cli';
import { processIo } from './io';

// Set by tools/build/build.mjs; dev runs and tests have no version.
const version = typeof WGCTL_VERSION !== 'undefined' && WGCTL_VERSION ? WGCTL_VERSION : '0.0.0-dev';

// `wgctl … | head` closes the pipe early: stop quietly instead of an EPIPE stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

runCli(process.argv.slice(2), processIo(), version).then(
  (code) => exitAfterFlush(code),
  (error: unknown) => {
    process.stderr.write(`wgctl: ${error instanceof Error ? error.message : String(error)}\n`);
    exitAfterFlush(1);
  },
);

/** Pipes are asynchronous on macOS: exit only once stdout and stderr have drained. */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
