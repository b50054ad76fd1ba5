// One jest run for the whole workspace: path aliases come from tsconfig.base.json,
// TypeScript is transpiled by swc (type checking is `npm run typecheck`).
const { compilerOptions } = require('./tsconfig.base.json');

const moduleNameMapper = {};
for (const [alias, [target]] of Object.entries(compilerOptions.paths)) {
  moduleNameMapper[`^${alias}$`] = `<rootDir>/${target}`;
}

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/tools'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }] },
  moduleNameMapper,
  testTimeout: 60000,
  // Network-namespace tests share /run/wireguard and iptables state: run files one at a time.
  maxWorkers: 1,
  reporters: ['default', '<rootDir>/tools/jest/summary-reporter.js'],
};
