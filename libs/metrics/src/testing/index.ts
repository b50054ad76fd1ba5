export * from './promtool';
export * from './scrape';
export * from './statuses';
