export * from './catalog';
export * from './builder';
export * from './server';
