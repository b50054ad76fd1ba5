export * from './atomic-file';
export * from './json-state-file';
export * from './background-sampler';
export * from './idle-trim';
