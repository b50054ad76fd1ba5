// The gRPC side of the agent kit: engine events → Progress/Outcome, the Up/Down stream handler.
export * from './messages';
export * from './stream';
export * from './metadata';
