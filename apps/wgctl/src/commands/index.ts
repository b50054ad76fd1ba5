/**
 * Every command implementation: the lazily loaded half of the CLI (see load-commands.ts).
 * Nothing on the `--help` path imports this module directly.
 */
export { initCommand } from './init';
export { upCommand } from './up';
export { downCommand } from './down';
export { statusCommand } from './status';
export { verifyCommand } from './verify';
export { planCommand } from './plan';
export { healthCommand } from './health';
export { debugParseCommand, kindsHelp } from './debug-parse';
