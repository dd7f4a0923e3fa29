import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { RetryableError } from '#core/errors';
import { DOMAIN_HEADER, OPENDSR_VERSION, openDsrStatus, SIGNATURE_HEADER, type OpenDsrStatus } from '#core/opendsr';
import type { ReceiptSigner } from '#core/ports';
import type { RequestRecord } from '#core/request';
import { dynamo } from './clients.ts';
import { requireEnv } from './env.ts';
import { logger } from './observability.ts';
import { receiptSignerFromEnv } from './receipts.ts';

/**
 * What OpenDSR needs besides intake: the processor's signature on every answer and callback
 * (ECDSA P-256 over SHA-256 of the exact body, Base64 of the DER signature, under its own KMS key),
 * the X.509 certificate discovery points to, and each request's controller and callback URLs.
 */
export class OpenDsrSigner {
  readonly domain: string;
  readonly #signer: ReceiptSigner;
  readonly #configured: string | undefined;
  #certificate: Promise<string> | undefined;

  /** `certificatePem`: a CA-issued certificate for the signing key; without one, a self-signed one is made. */
  constructor(signer: ReceiptSigner, domain: string, certificatePem?: string) {
    this.#signer = signer;
    this.domain = domain;
    this.#configured = certificatePem || undefined;
  }

  /** The headers a signed body goes with. */
  async headers(body: string): Promise<Record<string, string>> {
    const signature = await this.#signer.sign(new TextEncoder().encode(body));
    return { [DOMAIN_HEADER]: this.domain, [SIGNATURE_HEADER]: Buffer.from(signature).toString('base64') };
  }

  /** The certificate (PEM): the configured one, after checking it holds the signing key; or one made for the domain. */
  certificate(): Promise<string> {
    this.#certificate ??= this.#makeCertificate().catch((error: unknown) => {
      this.#certificate = undefined;
      throw error;
    });
    return this.#certificate;
  }

  async #makeCertificate(): Promise<string> {
    const publicKeyPem = await this.#signer.publicKeyPem();
    if (this.#configured) {
      const given = new X509Certificate(this.#configured);
      if (given.publicKey.export({ format: 'pem', type: 'spki' }).toString() !== publicKeyPem) {
        throw new Error('OPENDSR_CERTIFICATE is not for the OpenDSR signing key: issue it from a request signed with that key');
      }
      return given.toString();
    }
    return selfSigned(this.#signer, publicKeyPem, this.domain);
  }
}

/** The signer the stack configures (`OPENDSR_*`), for the domain it names or else the API's host. */
export function openDsrSignerFromEnv(): OpenDsrSigner {
  return new OpenDsrSigner(receiptSignerFromEnv('OPENDSR'), process.env['OPENDSR_DOMAIN'] || new URL(requireEnv('API_URL')).hostname, process.env['OPENDSR_CERTIFICATE']);
}

/**
 * A self-signed certificate for `domain` around the signing key, signed by it (through KMS in AWS):
 * the same subject, serial and validity on every call. OpenDSR asks for a CA-issued certificate
 * (§4.1); this one lets a controller verify signatures before the operator installs that.
 */
async function selfSigned(signer: ReceiptSigner, publicKeyPem: string, domain: string): Promise<string> {
  const x509 = await loadX509();
  const { keys, crypto, spki } = await remoteKeys(signer, publicKeyPem);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: createHash('sha256').update(spki).digest('hex').slice(0, 30),
      name: `CN=${domain}`,
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2036-01-01T00:00:00Z'),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        subjectAltName(x509, domain),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.BasicConstraintsExtension(false, undefined, true),
      ],
    },
    crypto,
  );
  return certificate.toString('pem');
}

/**
 * A certificate signing request (PKCS #10, PEM) for `domain` and the OpenDSR signing key, signed
 * by it: what a certificate authority needs to issue the CA-signed certificate OpenDSR asks for.
 */
export async function certificateRequest(signer: ReceiptSigner, domain: string): Promise<string> {
  const x509 = await loadX509();
  const { keys, crypto } = await remoteKeys(signer, await signer.publicKeyPem());
  const request = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: `CN=${domain}`, keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, extensions: [subjectAltName(x509, domain)] },
    crypto,
  );
  return request.toString('pem');
}

type X509 = typeof import('@peculiar/x509');

/**
 * @peculiar/x509, loaded when a certificate or a request is made (once a container, for the
 * certificate route; never for signing answers and callbacks), with the reflection polyfill its
 * dependency injection needs loaded before it.
 */
async function loadX509(): Promise<X509> {
  await import('reflect-metadata');
  return import('@peculiar/x509');
}

const subjectAltName = (x509: X509, domain: string) => new x509.SubjectAlternativeNameExtension([{ type: isIP(domain) ? 'ip' : 'dns', value: domain }]);

/** The signer's key as WebCrypto sees it: the public key, and a private key whose signing goes to the signer (the private key stays where it is). */
async function remoteKeys(signer: ReceiptSigner, publicKeyPem: string): Promise<{ keys: CryptoKeyPair; crypto: Crypto; spki: Buffer }> {
  const spki = Buffer.from(publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const publicKey = await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
  const privateKey = { algorithm: { name: 'ECDSA', namedCurve: 'P-256' }, type: 'private', extractable: false, usages: ['sign'] } as unknown as CryptoKey;
  const subtle = new Proxy(webcrypto.subtle, {
    get(target, property) {
      if (property === 'sign') return async (_algorithm: unknown, _key: unknown, data: BufferSource) => p1363(await signer.sign(new Uint8Array(data as ArrayBuffer))).buffer;
      const value = Reflect.get(target, property) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const crypto = { subtle, getRandomValues: <T extends ArrayBufferView>(a: T) => webcrypto.getRandomValues(a as never) as T } as unknown as Crypto;
  return { keys: { privateKey, publicKey }, crypto, spki };
}

/** A DER ECDSA signature (SEQUENCE of r and s) as WebCrypto gives one: r and s, 32 bytes each. */
function p1363(der: Uint8Array): Uint8Array {
  let at = der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2;
  const integer = () => {
    if (der[at] !== 0x02) throw new Error('not a DER ECDSA signature');
    const length = der[at + 1]!;
    const value = der.subarray(at + 2, at + 2 + length);
    at += 2 + length;
    return value.subarray(Math.max(0, value.length - 32));
  };
  const [r, s] = [integer(), integer()];
  const out = new Uint8Array(64);
  out.set(r, 32 - r.length);
  out.set(s, 64 - s.length);
  return out;
}

/** What Lethe keeps of an OpenDSR request beside the request itself (no identity). */
export interface OpenDsrRecord {
  readonly requestId: string;
  readonly controllerId: string;
  readonly callbackUrls: readonly string[];
  readonly submittedTime: string;
  readonly apiVersion: string;
  /** The status the callbacks last told. */
  readonly lastStatus: OpenDsrStatus;
}

const keyOf = (requestId: string) => ({ pk: `REQ#${requestId}`, sk: 'OPENDSR' });

/** OpenDSR's item of a request, in the requests table under the request's own key. */
export class OpenDsrStore {
  readonly #table: string;

  constructor(table: string) {
    this.#table = table;
  }

  /** Keep it once; false when it exists already (a replay). */
  async create(record: OpenDsrRecord): Promise<boolean> {
    try {
      await dynamo.send(new PutCommand({ TableName: this.#table, Item: { ...keyOf(record.requestId), ...record }, ConditionExpression: 'attribute_not_exists(pk)' }));
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw new RetryableError('OpenDSR: store the request', { cause: error });
    }
  }

  async get(requestId: string): Promise<OpenDsrRecord | undefined> {
    const out = await dynamo.send(new GetCommand({ TableName: this.#table, Key: keyOf(requestId), ConsistentRead: true }));
    return out.Item as OpenDsrRecord | undefined;
  }

  async told(requestId: string, status: OpenDsrStatus): Promise<void> {
    await dynamo.send(new UpdateCommand({ TableName: this.#table, Key: keyOf(requestId), UpdateExpression: 'SET lastStatus = :s', ExpressionAttributeValues: { ':s': status } }));
  }
}

/** Where a request stands as OpenDSR says it: in progress from the moment its saga began (a callback may have said so before its first step did). */
export function currentStatus(record: OpenDsrRecord, request: RequestRecord): OpenDsrStatus {
  return request.status === 'received' && record.lastStatus === 'in_progress' ? 'in_progress' : openDsrStatus(request.status);
}

/** The status body of a request (§8.3), for GET and, with the URL it goes to, for a callback (§8.7). */
export function statusBody(record: OpenDsrRecord, request: RequestRecord, callbackUrl?: string): object {
  return {
    controller_id: record.controllerId,
    expected_completion_time: request.dueAt,
    ...(callbackUrl && { status_callback_url: callbackUrl }),
    subject_request_id: record.requestId,
    request_status: currentStatus(record, request),
    api_version: OPENDSR_VERSION,
  };
}

/**
 * Tell every callback URL of a request where it stands, when that changed since it was last told:
 * one signed POST each (no redirects followed, ten seconds each). Throws when any failed, after
 * trying all, so the event is delivered again; a controller may hear the same status twice.
 */
export async function sendCallbacks(store: OpenDsrStore, signer: OpenDsrSigner, record: OpenDsrRecord, request: RequestRecord): Promise<{ sent: number; status: OpenDsrStatus } | undefined> {
  const status = currentStatus(record, request);
  if (status === record.lastStatus) return undefined;
  const failures: string[] = [];
  for (const url of record.callbackUrls) {
    const body = JSON.stringify(statusBody(record, request, url));
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await signer.headers(body)) },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(10_000),
      });
      if (!response.ok) failures.push(`HTTP ${String(response.status)}`);
    } catch (error) {
      failures.push((error as Error).name);
    }
  }
  if (failures.length > 0) {
    logger.warn('OpenDSR callbacks failed', { requestId: record.requestId, failures });
    throw new RetryableError(`OpenDSR: ${String(failures.length)} of ${String(record.callbackUrls.length)} callbacks failed (${failures.join(', ')})`);
  }
  await store.told(record.requestId, status);
  return { sent: record.callbackUrls.length, status };
}

/** A controller is its caller's role (or user), whichever session it signs from. */
export function controllerIdOf(userArn: string | null | undefined): string {
  if (!userArn) return 'anonymous';
  const assumed = /^arn:([^:]+):sts::(\d+):assumed-role\/([^/]+)\/.*$/.exec(userArn);
  return assumed ? `arn:${assumed[1]!}:iam::${assumed[2]!}:role/${assumed[3]!}` : userArn;
}
