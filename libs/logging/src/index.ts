export * from './redact';
export * from './logger';
export * from './bound';
export * from './rate-limit';
