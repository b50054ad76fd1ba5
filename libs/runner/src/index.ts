export * from './runner';
export * from './fake';
export * from './steps';
