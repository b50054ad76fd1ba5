// Parsers for linux command outputs; each module exports pure functions (no I/O).
export * from './ip-route';
export * from './ip-addr';
export * from './ip-monitor';
export * from './nft';
export * from './resolv-conf';
export * from './resolvectl';
export * from './tcpdump';
export * from './iptables';
