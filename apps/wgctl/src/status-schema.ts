/**
 * `wgctl status --json` (schema `wgctl.status/v1`): the one definition. The TypeScript types of
 * status-model.ts are inferred from it, docs/status.schema.json is generated from it
 * (`npm run gen:status-schema`) and docs/status-schema.md says what each field means. Objects are
 * strict: a field added to the output without being added here fails the tests.
 */
import { z } from 'zod';

export const STATUS_SCHEMA_ID = 'wgctl.status/v1';

/** Names of the $defs in the JSON Schema (the doc's names); local, so no global zod registry. */
const definitions = z.registry<{ id: string }>();

const isoTime = z.iso.datetime();
const nullableString = z.string().nullable();
const port = z.number().int().min(0).max(65535);

const agentSchema = z
  .strictObject({
    name: z.string(),
    version: z.string(),
    protocolVersion: z.string(),
    hostname: z.string(),
    driver: z.string(),
    pid: z.number().int().nonnegative(),
  })
  .register(definitions, { id: 'Agent' });

const healthSchema = z
  .strictObject({
    state: z.enum(['SERVING', 'NOT_SERVING', 'UNKNOWN']),
    reasons: z.array(z.string()),
    sampledAt: isoTime.nullable(),
  })
  .register(definitions, { id: 'Health' });

const checkSchema = z
  .strictObject({ name: z.string(), ok: z.boolean(), detail: z.string(), evidence: z.array(z.string()) })
  .register(definitions, { id: 'Check' });

const unreachableSchema = z
  .strictObject({ reachable: z.literal(false), target: z.string(), error: z.string().min(1) })
  .register(definitions, { id: 'Unreachable' });

const vmPeerSchema = z.strictObject({
  publicKey: z.string(),
  endpoint: nullableString,
  allowedIps: z.array(z.string()),
  latestHandshake: isoTime.nullable(),
  handshakeAgeSeconds: z.number().int().nonnegative().nullable(),
  rxBytes: z.number().int().nonnegative(),
  txBytes: z.number().int().nonnegative(),
  persistentKeepalive: z.number().int().positive().nullable(),
});

/** The vm-agent's probe through the tunnel: is anything coming back? */
const livenessSchema = z
  .strictObject({
    state: z.enum(['unknown', 'alive', 'probing', 'dead']),
    /** When rx last moved through the tunnel (any reply); null: not seen yet. */
    lastReply: isoTime.nullable(),
    lastReplyAgeSeconds: z.number().int().nonnegative().nullable(),
    /** The probe awaiting its answer; null: none. */
    lastProbe: isoTime.nullable(),
    deadSince: isoTime.nullable(),
    probeTarget: nullableString,
    detail: z.string(),
  })
  .register(definitions, { id: 'Liveness' });

/** What an agent's self-healing put back while up, since it started. */
const selfHealSchema = z
  .strictObject({
    heals: z.number().int().nonnegative(),
    lastHeal: isoTime.nullable(),
    /** What the last heal put back. */
    lastChanges: z.array(z.string()),
    /** Who had changed it, as far as the OS tells; null: it does not say. */
    lastBy: nullableString,
    lastTrigger: nullableString,
  })
  .register(definitions, { id: 'SelfHeal' });

export const vmSideSchema = z
  .strictObject({
    reachable: z.literal(true),
    target: z.string(),
    agent: agentSchema.nullable(),
    health: healthSchema,
    interface: z.string(),
    interfaceUp: z.boolean(),
    publicKey: z.string(),
    listenPort: port,
    tunnelAddresses: z.array(z.string()),
    ipForward: z.boolean(),
    iptablesBackend: z.string(),
    macSource: nullableString,
    /** The Mac's IPv6 the VM forwards and NATs too; null when IPv4 only. */
    macSource6: nullableString,
    peers: z.array(vmPeerSchema),
    /** null: the vm-agent does not watch the tunnel (not up, or an older agent). */
    liveness: livenessSchema.nullable(),
    /** null: the vm-agent does not heal (an older agent, or `--heal-check-interval 0`). */
    selfHeal: selfHealSchema.nullable(),
    checks: z.array(checkSchema),
  })
  .register(definitions, { id: 'VmSide' });

const portalWindowSchema = z
  .strictObject({ until: z.string(), secondsLeft: z.number().int().nonnegative(), resolvers: z.array(z.string()), tcpPorts: z.array(z.number().int()) })
  .register(definitions, { id: 'PortalWindow' });

export const macSideSchema = z
  .strictObject({
    reachable: z.literal(true),
    target: z.string(),
    agent: agentSchema.nullable(),
    health: healthSchema,
    up: z.boolean(),
    uplink: z.strictObject({ interface: nullableString, gateway: nullableString }),
    vmAddress: nullableString,
    /** IPv6 as the last Up applied it: routed via vmAddress6, or blocked; null when not up. */
    ipv6: z.enum(['route', 'block']).nullable(),
    vmAddress6: nullableString,
    endpoints: z.array(z.strictObject({ host: z.string(), ip: z.string(), port })),
    routes: z.array(z.strictObject({ destination: z.string(), gateway: z.string(), interface: z.string(), present: z.boolean(), evidence: z.string() })),
    killSwitch: z.strictObject({
      loaded: z.boolean(),
      enabled: z.boolean(),
      referenced: z.boolean(),
      tokenHeld: z.boolean(),
      interface: nullableString,
      rules: z.array(z.string()),
    }),
    /** --allow-lan: whether the kill switch lets the LAN through, and which of the uplink's subnets. */
    lan: z.strictObject({ allowed: z.boolean(), subnets: z.array(z.string()) }),
    /** `wgctl portal`: an open captive-portal sign-in window (the Mac's web and DNS unprotected), else null. */
    portalWindow: portalWindowSchema.nullable(),
    /** --exclude: the excluded CIDRs of the last Up, each with whether its route (via the uplink's gateway) is there. */
    excluded: z.array(z.strictObject({ destination: z.string(), present: z.boolean() })),
    dns: z.strictObject({ servers: z.array(z.string()), previous: z.array(z.string()), managed: z.boolean() }),
    lastRoam: isoTime.nullable(),
    /** Roams the mac-agent handled since it started. */
    roams: z.number().int().nonnegative(),
    /** How long the last of those took (first routing event → pins and kill switch moved); null: none yet. */
    lastRoamTookMs: z.number().nonnegative().nullable(),
    /** null: an older mac-agent. */
    selfHeal: selfHealSchema.nullable(),
    checks: z.array(checkSchema),
  })
  .register(definitions, { id: 'MacSide' });

/** When the controller's certificate and its CA expire (wgctl warns 30 days ahead). */
const controllerSchema = z
  .strictObject({
    certificate: z.strictObject({
      notAfter: isoTime,
      daysLeft: z.number().int(),
      caNotAfter: isoTime,
      caDaysLeft: z.number().int(),
      /** false within the warning window (or expired): `wgctl init --rotate` renews. */
      ok: z.boolean(),
      detail: z.string(),
    }),
  })
  .register(definitions, { id: 'Controller' });

/** A captive portal the controller's probe found (the agents never see it). */
const portalSchema = z
  .strictObject({
    detectedAt: isoTime,
    ageSeconds: z.number().int().nonnegative(),
    probeUrl: z.string().min(1),
    status: z.number().int(),
    location: nullableString,
    detail: z.string(),
  })
  .register(definitions, { id: 'Portal' });

const overallSchema = z.enum(['healthy', 'degraded', 'down']);

/** The exit code of each verdict (also the document's `exitCode`). */
export const OVERALL_EXIT = { healthy: 0, degraded: 1, down: 2 } as const;

export const statusReportSchema = z
  .strictObject({
    schema: z.literal(STATUS_SCHEMA_ID),
    time: isoTime,
    overall: overallSchema,
    exitCode: z.union([z.literal(0), z.literal(1), z.literal(2)]),
    problems: z.array(z.string()),
    vm: z.discriminatedUnion('reachable', [vmSideSchema, unreachableSchema]),
    mac: z.discriminatedUnion('reachable', [macSideSchema, unreachableSchema]),
    /** The controller's own mTLS certificate (null when it could not be read). */
    controller: controllerSchema.nullable(),
    /** A captive portal a recent failed `wgctl up` found, while the Mac is not up; else null. */
    portal: portalSchema.nullable(),
  })
  // Not expressible in JSON Schema (so only zod checks them): cross-field invariants.
  .refine((r) => r.exitCode === OVERALL_EXIT[r.overall], { message: 'exitCode must match overall' })
  .refine((r) => (r.overall === 'healthy') === (r.problems.length === 0), { message: 'problems is empty exactly when healthy' });

export type Overall = z.infer<typeof overallSchema>;
export type AgentJson = z.infer<typeof agentSchema>;
export type HealthJson = z.infer<typeof healthSchema>;
export type CheckJson = z.infer<typeof checkSchema>;
export type Unreachable = z.infer<typeof unreachableSchema>;
export type VmPeerJson = z.infer<typeof vmPeerSchema>;
export type LivenessJson = z.infer<typeof livenessSchema>;
export type SelfHealJson = z.infer<typeof selfHealSchema>;
export type VmSideJson = z.infer<typeof vmSideSchema>;
export type PortalWindowJson = z.infer<typeof portalWindowSchema>;
export type MacSideJson = z.infer<typeof macSideSchema>;
export type ControllerJson = z.infer<typeof controllerSchema>;
export type PortalJson = z.infer<typeof portalSchema>;
export type StatusReport = z.infer<typeof statusReportSchema>;

/** Where the published JSON Schema lives in the repository, and its `$id`. */
export const STATUS_JSON_SCHEMA_FILE = 'docs/status.schema.json';
export const STATUS_JSON_SCHEMA_URI = 'urn:wgctl:schema:wgctl.status/v1';

/** The JSON Schema (draft 2020-12) of `wgctl status --json`, named sub-schemas under $defs. */
export function statusJsonSchema(): Record<string, unknown> {
  const { $schema, ...generated } = z.toJSONSchema(statusReportSchema, { target: 'draft-2020-12', metadata: definitions, unrepresentable: 'throw' });
  return {
    $schema,
    $id: STATUS_JSON_SCHEMA_URI,
    title: `wgctl status --json (${STATUS_SCHEMA_ID})`,
    description: 'One document of `wgctl status --json` (one per line with --watch). Field meanings: docs/status-schema.md.',
    ...generated,
  };
}

/** The file's exact text: what the generator writes and the drift test compares. */
export function statusJsonSchemaText(): string {
  return `${JSON.stringify(statusJsonSchema(), null, 2)}\n`;
}
