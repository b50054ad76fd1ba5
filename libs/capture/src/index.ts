export * from './capture';
export * from './ping';
export * from './testing/fake-tcpdump';
