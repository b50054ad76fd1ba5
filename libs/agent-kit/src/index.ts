// The transport-free part of the agent kit: what the engines use. The gRPC side is
// '@wgctl/agent-kit/grpc' (tools/boundaries/check.mjs keeps it out of here).
export * from './operation';
export * from './errors';
export * from './gate';
export * from './guarded-steps';
export * from './journal-phase';
export * from './health-sampler';
