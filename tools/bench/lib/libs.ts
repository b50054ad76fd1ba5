/**
 * What the .mjs harness needs from the TypeScript libs, bundled on the fly by
 * lib/common.mjs#bundleTs (esbuild resolves the @wgctl/* aliases).
 */
export { createPki, loadTlsMaterial } from '@wgctl/transport';
