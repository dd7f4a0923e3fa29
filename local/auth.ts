import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { ACCOUNT, REGION, type Resolver } from './template.ts';

/**
 * Local mode checks what API Gateway checks in AWS: each IAM-authorized route needs a SigV4
 * signature (service `execute-api`) by a known access key, no older than five minutes, and the
 * role behind the key must be allowed `execute-api:Invoke` on the route by the stack's own
 * policies. Each role of the stack that may invoke the API gets a local access key, kept in
 * `<stateDir>/credentials.json` and, as AWS profiles `lethe-<role>`, in `<stateDir>/aws-credentials`.
 */

export interface LocalKey {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** Role logical id (`ComplianceRole`) → its local access key. */
export type LocalCredentials = Readonly<Record<string, LocalKey>>;

/** Who a verified request is. */
export interface Caller {
  readonly role: string;
  readonly accessKey: string;
  readonly userArn: string;
}

/** An answer as API Gateway gives it: 403 with its message. */
export class AccessDenied extends Error {
  override readonly name = 'AccessDenied';
}

const MAX_SKEW_MS = 5 * 60 * 1000;
const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** `ComplianceRole` → `lethe-compliance`: the AWS profile name of a role's local key. */
export const profileOf = (role: string) => `lethe-${role.replace(/Role$/, '').toLowerCase()}`;

/** The roles of the template with `execute-api:Invoke` somewhere in their policies, and what they may invoke (ARN patterns). */
export function apiPermissions(resolver: Resolver): Map<string, string[]> {
  const permissions = new Map<string, string[]>();
  for (const [, policy] of resolver.resources('AWS::IAM::Policy')) {
    const p = resolver.resolve(policy.Properties ?? {}) as { Roles?: string[]; PolicyDocument?: { Statement?: { Effect: string; Action: string | string[]; Resource: string | string[] }[] } };
    const patterns = (p.PolicyDocument?.Statement ?? [])
      .filter((s) => s.Effect === 'Allow' && [s.Action].flat().includes('execute-api:Invoke'))
      .flatMap((s) => [s.Resource].flat());
    if (patterns.length === 0) continue;
    for (const role of p.Roles ?? []) {
      const id = resolver.logicalIdOf(role) ?? role;
      if (resolver.resource(id).Type !== 'AWS::IAM::Role') continue;
      // `ComplianceRole5DD462AB` → `ComplianceRole`: the construct's name, without CDK's hash.
      const name = id.replace(/[0-9A-F]{8}$/, '');
      permissions.set(name, [...(permissions.get(name) ?? []), ...patterns]);
    }
  }
  return permissions;
}

/** This state directory's local keys for these roles: kept from an earlier run, new for a new role. */
export function ensureLocalCredentials(stateDir: string, roles: readonly string[]): LocalCredentials {
  const file = join(stateDir, 'credentials.json');
  const kept = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, LocalKey>) : {};
  const credentials = Object.fromEntries(
    roles.map((role) => [role, kept[role] ?? { accessKeyId: `LKIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64url') }]),
  );
  writeFileSync(file, JSON.stringify(credentials, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600);
  const profiles = Object.entries(credentials).map(([role, key]) => `[${profileOf(role)}]\naws_access_key_id = ${key.accessKeyId}\naws_secret_access_key = ${key.secretAccessKey}\nregion = ${REGION}\n`);
  writeFileSync(join(stateDir, 'aws-credentials'), profiles.join('\n'), { mode: 0o600 });
  chmodSync(join(stateDir, 'aws-credentials'), 0o600);
  return credentials;
}

/** IAM's wildcard match of an ARN pattern: `*` any run of characters, `?` one. */
function arnMatches(pattern: string, arn: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return regex.test(arn);
}

export interface SignedRequest {
  readonly method: string;
  /** The path as sent, query string left out. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** Verifies SigV4 signatures and role permissions against the local keys and the stack's policies. */
export class LocalAuthorizer {
  readonly #byKey = new Map<string, { role: string; key: LocalKey }>();
  readonly #permissions: Map<string, string[]>;
  readonly #apiId: string;

  constructor(credentials: LocalCredentials, permissions: Map<string, string[]>, apiId: string) {
    for (const [role, key] of Object.entries(credentials)) this.#byKey.set(key.accessKeyId, { role, key });
    this.#permissions = permissions;
    this.#apiId = apiId;
  }

  /** The caller of a signed request allowed to invoke this route (`/v1/requests/{id}` as sent); else AccessDenied. */
  async authorize(request: SignedRequest, now = Date.now()): Promise<Caller> {
    const header = request.headers['authorization'];
    if (typeof header !== 'string') throw new AccessDenied('Missing Authentication Token');
    const parsed = AUTHORIZATION.exec(header);
    if (!parsed) throw new AccessDenied('Authorization header requires a SigV4 Credential, SignedHeaders and Signature');
    const [, accessKeyId, day, region, service, signedHeaders, signature] = parsed as unknown as [string, string, string, string, string, string, string];
    const known = this.#byKey.get(accessKeyId);
    if (!known) throw new AccessDenied('The security token included in the request is invalid.');
    if (service !== 'execute-api') throw new AccessDenied(`Credential should be scoped to correct service: 'execute-api'.`);
    const amzDate = request.headers['x-amz-date'];
    const signed = signedHeaders.split(';');
    if (typeof amzDate !== 'string' || !signed.includes('x-amz-date') || !signed.includes('host')) throw new AccessDenied('Signature must cover the host and x-amz-date headers.');
    const at = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (Number.isNaN(at) || amzDate.slice(0, 8) !== day) throw new AccessDenied('Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.');
    if (Math.abs(now - at) > MAX_SKEW_MS) throw new AccessDenied('Signature expired: the request is more than 5 minutes from the server time.');

    const headers: Record<string, string> = {};
    for (const name of signed) {
      const value = request.headers[name];
      if (value === undefined) throw new AccessDenied(`Signed header ${name} is missing from the request.`);
      headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    // A signed payload hash must be the hash of what arrived (the signer would otherwise trust it).
    const claimed = headers['x-amz-content-sha256'];
    if (claimed !== undefined && claimed !== createHash('sha256').update(request.body).digest('hex')) {
      throw new AccessDenied('The request signature we calculated does not match the signature you provided: x-amz-content-sha256 is not the hash of the body.');
    }
    const host = headers['host']!;
    const signer = new SignatureV4({ credentials: known.key, region, service, sha256: Hash.bind(null, 'sha256'), applyChecksum: false });
    const expected = await signer.sign(
      {
        method: request.method,
        protocol: 'http:',
        hostname: host.replace(/:\d+$/, ''),
        port: Number(/:(\d+)$/.exec(host)?.[1] ?? 80),
        path: request.path,
        query: Object.fromEntries([...new Set(request.query.keys())].map((k) => [k, request.query.getAll(k).length > 1 ? request.query.getAll(k) : request.query.get(k)!])),
        headers,
        ...(request.body && { body: request.body }),
      },
      { signingDate: new Date(at), signableHeaders: new Set(signed), signingRegion: region, signingService: service },
    );
    const computed = /Signature=([0-9a-f]{64})/.exec(expected.headers['authorization'] ?? '')?.[1] ?? '';
    if (computed.length !== signature.length || !timingSafeEqual(Buffer.from(computed), Buffer.from(signature))) {
      throw new AccessDenied('The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.');
    }
    const userArn = `arn:aws:sts::${ACCOUNT}:assumed-role/${known.role}/local`;
    const resource = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${this.#apiId}/local/${request.method}${request.path}`;
    if (!(this.#permissions.get(known.role) ?? []).some((pattern) => arnMatches(pattern, resource))) {
      throw new AccessDenied(`User: ${userArn} is not authorized to perform: execute-api:Invoke on resource: ${resource}`);
    }
    return { role: known.role, accessKey: accessKeyId, userArn };
  }
}
