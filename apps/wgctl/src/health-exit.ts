/**
 * `wgctl health` exit codes: grpc_health_probe's (its main.go: StatusInvalidArguments 1,
 * StatusConnectionFailure 2, StatusRPCFailure 3, StatusUnhealthy 4), so a script can swap one
 * for the other. Light on purpose: cli.ts reads it on the `--help` path.
 */
export const HEALTH_EXIT = {
  serving: 0,
  /** Bad flags, or a config / TLS file that cannot be loaded: nothing was attempted. */
  invalidArguments: 1,
  /** No ready connection within the connect timeout (refused, timed out, TLS refused either way). */
  connectionFailure: 2,
  /** Connected, but the Check failed: UNIMPLEMENTED, DEADLINE_EXCEEDED, PERMISSION_DENIED, NOT_FOUND… */
  rpcFailure: 3,
  /** The Check answered anything but SERVING. */
  notServing: 4,
} as const;

export const HEALTH_EXIT_HELP = `
Exit codes (grpc_health_probe's):
  0  SERVING (every agent probed)
  1  invalid arguments: a bad flag, or a config or TLS file that cannot be loaded
  2  connection failure: no connection within --connect-timeout (refused, no answer, TLS
     refused by either side)
  3  RPC failure: connected, but the Check failed (UNIMPLEMENTED, DEADLINE_EXCEEDED,
     PERMISSION_DENIED, NOT_FOUND for an unknown --service, …)
  4  not serving: the Check answered NOT_SERVING or UNKNOWN
With --agent both: the lowest non-zero code of the two (the agent that got least far), so 4
means both answered and 3 means both connected.`;
