// Parsers for wireguard command outputs; each module exports pure functions (no I/O).
export {};
