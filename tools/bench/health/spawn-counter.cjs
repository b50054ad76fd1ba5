/**
 * Preloaded (`node --require`) into the benchmarked server: counts every process the server
 * starts through node:child_process, before any server code runs.
 *
 * Asynchronous APIs (spawn, exec, execFile, fork) all end in ChildProcess.prototype.spawn;
 * the synchronous ones (spawnSync, execSync, execFileSync) are wrapped one by one. The counts
 * live in globalThis.__benchSpawnCounts; the server reports them over IPC.
 */
'use strict';
const childProcess = require('node:child_process');

const counts = { async: 0, sync: 0, byApi: {} };
globalThis.__benchSpawnCounts = counts;

function note(api) {
  counts.byApi[api] = (counts.byApi[api] || 0) + 1;
}

const originalSpawn = childProcess.ChildProcess.prototype.spawn;
childProcess.ChildProcess.prototype.spawn = function countedSpawn(...args) {
  counts.async += 1;
  note('ChildProcess#spawn');
  return originalSpawn.apply(this, args);
};

for (const api of ['spawnSync', 'execSync', 'execFileSync']) {
  const original = childProcess[api];
  childProcess[api] = function countedSync(...args) {
    counts.sync += 1;
    note(api);
    return original.apply(this, args);
  };
}
