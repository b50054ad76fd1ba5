import type { PeerCertificate } from 'node:tls';
/** Who is who: every certificate's CN is one of these roles. */
export const ROLES = ['controller', 'vm-agent', 'mac-agent', 'monitor'] as const;
export type Role = (typeof ROLES)[number];

/** The role whose server implements a gRPC service (the default TLS server name for clients). */
const SERVICE_ROLES: Readonly<Record<string, Role>> = {
  'wgctl.v1.VmAgent': 'vm-agent',
  'wgctl.v1.MacAgent': 'mac-agent',
};

export function roleForService(serviceName: string): Role | undefined {
  return SERVICE_ROLES[serviceName];
}

/** The role a verified peer certificate names: its subject CN (the first, if several). */
export function roleOfCertificate(certificate: Partial<PeerCertificate> | null | undefined): string | undefined {
  const cn = certificate?.subject?.CN as string | string[] | undefined;
  return Array.isArray(cn) ? cn[0] : cn;
}
