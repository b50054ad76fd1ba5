/**
 * The zod mirror of `wgctl status --json` (docs/status-schema.md). Tests validate every JSON
 * document the command emits against it. Strict objects: a field added to the output without
 * being added here (and to the doc) fails the tests.
 */
import { z } from 'zod';

const isoTime = z.iso.datetime();
const nullableString = z.string().nullable();

const agent = z
  .strictObject({
    name: z.string(),
    version: z.string(),
    protocolVersion: z.string(),
    hostname: z.string(),
    driver: z.string(),
    pid: z.number().int().nonnegative(),
  })
  .nullable();

const health = z.strictObject({
  state: z.enum(['SERVING', 'NOT_SERVING', 'UNKNOWN']),
  reasons: z.array(z.string()),
  sampledAt: isoTime.nullable(),
});

const check = z.strictObject({ name: z.string(), ok: z.boolean(), detail: z.string(), evidence: z.array(z.string()) });

const unreachable = z.strictObject({ reachable: z.literal(false), target: z.string(), error: z.string().min(1) });

const vmPeer = z.strictObject({
  publicKey: z.string(),
  endpoint: nullableString,
  allowedIps: z.array(z.string()),
  latestHandshake: isoTime.nullable(),
  handshakeAgeSeconds: z.number().int().nonnegative().nullable(),
  rxBytes: z.number().int().nonnegative(),
  txBytes: z.number().int().nonnegative(),
  persistentKeepalive: z.number().int().positive().nullable(),
});

const liveness = z.strictObject({
  state: z.enum(['unknown', 'alive', 'probing', 'dead']),
  lastReply: isoTime.nullable(),
  lastReplyAgeSeconds: z.number().int().nonnegative().nullable(),
  lastProbe: isoTime.nullable(),
  deadSince: isoTime.nullable(),
  probeTarget: nullableString,
  detail: z.string(),
});

const selfHeal = z.strictObject({
  heals: z.number().int().nonnegative(),
  lastHeal: isoTime.nullable(),
  lastChanges: z.array(z.string()),
  lastBy: nullableString,
  lastTrigger: nullableString,
});

export const vmSideSchema = z.strictObject({
  reachable: z.literal(true),
  target: z.string(),
  agent,
  health,
  interface: z.string(),
  interfaceUp: z.boolean(),
  publicKey: z.string(),
  listenPort: z.number().int().min(0).max(65535),
  tunnelAddresses: z.array(z.string()),
  ipForward: z.boolean(),
  iptablesBackend: z.string(),
  macSource: nullableString,
  macSource6: nullableString,
  peers: z.array(vmPeer),
  liveness: liveness.nullable(),
  selfHeal: selfHeal.nullable(),
  checks: z.array(check),
});

export const macSideSchema = z.strictObject({
  reachable: z.literal(true),
  target: z.string(),
  agent,
  health,
  up: z.boolean(),
  uplink: z.strictObject({ interface: nullableString, gateway: nullableString }),
  vmAddress: nullableString,
  ipv6: z.enum(['route', 'block']).nullable(),
  vmAddress6: nullableString,
  endpoints: z.array(z.strictObject({ host: z.string(), ip: z.string(), port: z.number().int().min(0).max(65535) })),
  routes: z.array(
    z.strictObject({ destination: z.string(), gateway: z.string(), interface: z.string(), present: z.boolean(), evidence: z.string() }),
  ),
  killSwitch: z.strictObject({
    loaded: z.boolean(),
    enabled: z.boolean(),
    referenced: z.boolean(),
    tokenHeld: z.boolean(),
    interface: nullableString,
    rules: z.array(z.string()),
  }),
  lan: z.strictObject({ allowed: z.boolean(), subnets: z.array(z.string()) }),
  portalWindow: z.strictObject({ until: z.string(), secondsLeft: z.number().int().nonnegative(), resolvers: z.array(z.string()), tcpPorts: z.array(z.number().int()) }).nullable(),
  excluded: z.array(z.strictObject({ destination: z.string(), present: z.boolean() })),
  dns: z.strictObject({ servers: z.array(z.string()), previous: z.array(z.string()), managed: z.boolean() }),
  lastRoam: isoTime.nullable(),
  selfHeal: selfHeal.nullable(),
  checks: z.array(check),
});

export const statusReportSchema = z
  .strictObject({
    schema: z.literal('wgctl.status/v1'),
    time: isoTime,
    overall: z.enum(['healthy', 'degraded', 'down']),
    exitCode: z.union([z.literal(0), z.literal(1), z.literal(2)]),
    problems: z.array(z.string()),
    vm: z.discriminatedUnion('reachable', [vmSideSchema, unreachable]),
    mac: z.discriminatedUnion('reachable', [macSideSchema, unreachable]),
    controller: z
      .strictObject({
        certificate: z.strictObject({
          notAfter: isoTime,
          daysLeft: z.number().int(),
          caNotAfter: isoTime,
          caDaysLeft: z.number().int(),
          ok: z.boolean(),
          detail: z.string(),
        }),
      })
      .nullable(),
    portal: z
      .strictObject({
        detectedAt: isoTime,
        ageSeconds: z.number().int().nonnegative(),
        probeUrl: z.string().min(1),
        status: z.number().int(),
        location: nullableString,
        detail: z.string(),
      })
      .nullable(),
  })
  .refine((r) => r.exitCode === { healthy: 0, degraded: 1, down: 2 }[r.overall], { message: 'exitCode must match overall' })
  .refine((r) => (r.overall === 'healthy') === (r.problems.length === 0), { message: 'problems is empty exactly when healthy' });
