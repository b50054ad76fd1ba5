export * from './capture';
export * from './link';
export * from './ping';
export * from './testing/fakes';
