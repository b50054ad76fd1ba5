// Parsers for darwin command outputs; each module exports pure functions (no I/O).
export { DARWIN_INTERFACE_NAME, DARWIN_VIRTUAL_INTERFACE, type DarwinFamily } from './addresses';
export * from './netstat';
export * from './route';
export * from './route-monitor';
export * from './pf-rules';
export * from './pf-normalize';
export { pfIcmpCodeNumber, pfIcmpTypeNumber } from './pf-print-tables';
export * from './pfctl';
export * from './networksetup';
export * from './ifconfig';
export * from './scutil';
export * from './scutil-watch';
export * from './ipconfig';
