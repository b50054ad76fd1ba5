export * from './roles';
export * from './errors';
export * from './tls';
export * from './pki';
export * from './proto-files';
export * from './server';
export * from './rejections';
export * from './client';
