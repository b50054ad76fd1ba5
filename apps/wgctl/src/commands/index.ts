/**
 * Every command implementation: the lazily loaded half of the CLI (see load-commands.ts).
 * Nothing on the `--help` path imports this module directly.
 *
 * Each command's module is required only when that command runs: esbuild turns a
 * `require()` of an ES module into a lazy init, so `wgctl status` never initialises
 * init's PKI code (@peculiar/x509), verify's capture planning or debug parse's parsers.
 * Static imports here would initialise every command's dependencies on any command.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
type Init = typeof import('./init');
type Up = typeof import('./up');
type Portal = typeof import('./portal');
type Down = typeof import('./down');
type Status = typeof import('./status');
type Verify = typeof import('./verify');
type Plan = typeof import('./plan');
type Health = typeof import('./health');
type Metrics = typeof import('./metrics');
type DebugParse = typeof import('./debug-parse');
type Menubar = typeof import('./menubar');

export const initCommand: Init['initCommand'] = (...args) => (require('./init') as Init).initCommand(...args);
export const upCommand: Up['upCommand'] = (...args) => (require('./up') as Up).upCommand(...args);
export const portalCommand: Portal['portalCommand'] = (...args) => (require('./portal') as Portal).portalCommand(...args);
export const downCommand: Down['downCommand'] = (...args) => (require('./down') as Down).downCommand(...args);
export const statusCommand: Status['statusCommand'] = (...args) => (require('./status') as Status).statusCommand(...args);
export const verifyCommand: Verify['verifyCommand'] = (...args) => (require('./verify') as Verify).verifyCommand(...args);
export const planCommand: Plan['planCommand'] = (...args) => (require('./plan') as Plan).planCommand(...args);
export const healthCommand: Health['healthCommand'] = (...args) => (require('./health') as Health).healthCommand(...args);
export const metricsCommand: Metrics['metricsCommand'] = (...args) => (require('./metrics') as Metrics).metricsCommand(...args);
export const menubarCommand: Menubar['menubarCommand'] = (...args) => (require('./menubar') as Menubar).menubarCommand(...args);
export const debugParseCommand: DebugParse['debugParseCommand'] = (...args) =>
  (require('./debug-parse') as DebugParse).debugParseCommand(...args);
export const kindsHelp: DebugParse['kindsHelp'] = (...args) => (require('./debug-parse') as DebugParse).kindsHelp(...args);
