// Parsers for wireguard command outputs; each module exports pure functions (no I/O).
export * from './secret';
export * from './wg-quick-config';
export * from './wg-dump';
export * from './wg-uapi';
