export * from './topology';
export * from './plan';
export * from './lab';
export * from './agents';
