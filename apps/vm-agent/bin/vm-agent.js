#!/usr/bin/env node
// npm links this into node_modules/.bin (the root package.json lists apps/* as workspaces),
// so `npx vm-agent` works from the repository root after `npm run build`.
const path = require('node:path');
const bundle = path.resolve(__dirname, '../../../dist/apps/vm-agent/vm-agent.js');
try {
  require.resolve(bundle);
} catch {
  console.error('vm-agent is not built yet: run `npm run build` first');
  process.exit(1);
}
require(bundle);
