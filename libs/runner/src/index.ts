export * from './runner';
export * from './fake';
export * from './steps';
export * from './stream';
export * from './together';
export * from './shared-reads';
export * from './supervised';
