export * from './atomic-file';
export * from './json-state-file';
