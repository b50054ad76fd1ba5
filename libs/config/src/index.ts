export * from './validators';
export * from './errors';
export * from './wgctl-config';
export * from './trusted-path';
export * from './exclude';
