// Parsers for linux command outputs; each module exports pure functions (no I/O).
export {};
