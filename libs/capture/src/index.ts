export * from './capture';
export * from './ping';
export * from './testing/fakes';
