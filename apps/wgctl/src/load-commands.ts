/**
 * The one door to the command implementations (gRPC, listr2, transport, parsers…).
 *
 * In dev and tests this is a plain lazy require. The release build
 * (apps/wgctl/build/lazy-commands.cjs) replaces this module: the commands are bundled
 * separately, compressed into a comment at the end of the single-file bundle, and compiled
 * only when a command runs, so V8 does not have to parse ~3 MB of code for `--help`.
 */
export type Commands = typeof import('./commands');

let loaded: Commands | undefined;

/**
 * `command` names the command about to run: the release build keeps one V8 code cache per
 * command (each holds the functions its command compiled); here it is not needed.
 */
export function commands(_command?: string): Commands {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('./commands') as Commands;
  return loaded;
}
