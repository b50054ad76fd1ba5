/**
 * Pure parsers: text in, typed values out. No I/O, no processes, no clocks (callers pass
 * `now` where ages matter). Boundaries are enforced by tools/boundaries/check.mjs.
 * Names carry their tool (parseNetstatRoutes, parseWgDump, …) so the barrels never clash.
 */
export * from './errors';
export * from './darwin';
export * from './linux';
export * from './wireguard';
