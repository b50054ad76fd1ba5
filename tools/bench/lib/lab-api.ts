/** The lab's TypeScript API for the .mjs lab benchmarks (bundled on the fly by lib/common.mjs#bundleTs). */
export * from '../../lab/src/index';
export { ExecRunner } from '@wgctl/runner';
