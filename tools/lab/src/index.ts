export * from './topology';
export * from './plan';
export * from './lab';
export * from './agents';
export * from './neighbour';
export * from './portal';
