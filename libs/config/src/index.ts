export * from './validators';
export * from './errors';
export * from './wgctl-config';
