import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

/**
 * Lethe's HTTP API with every call signed with SigV4 (service `execute-api`), as API Gateway's IAM
 * authorization and local mode both require.
 */
export class SignedApi {
  readonly baseUrl: string;
  readonly region: string;
  readonly #credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  readonly #signer: SignatureV4;

  constructor(baseUrl: string, credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider, region: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.region = region;
    this.#credentials = credentials;
    this.#signer = new SignatureV4({ credentials, region, service: 'execute-api', sha256: Hash.bind(null, 'sha256'), applyChecksum: false });
  }

  /** The credentials calls are signed with (resolved from the chain). */
  async credentials(): Promise<AwsCredentialIdentity> {
    return typeof this.#credentials === 'function' ? this.#credentials() : this.#credentials;
  }

  /** A call to the API, signed: `path` may hold a query string; `body` is sent as it is (JSON). */
  async fetch(path: string, init: { method?: string; body?: string } = {}): Promise<Response> {
    const { url, method, headers, body } = await this.sign(path, init);
    // fetch sends the host itself (the same one).
    const { host: _host, ...rest } = headers;
    return fetch(url, { method, headers: rest, ...(body !== undefined && { body }) });
  }

  /** What a signed call sends, for a client other than fetch: its URL, method, headers (host included) and body. */
  async sign(path: string, init: { method?: string; body?: string } = {}): Promise<{ url: URL; method: string; headers: Record<string, string>; body?: string }> {
    const given = path.startsWith('http') ? new URL(path) : undefined;
    const url = new URL(`${this.baseUrl}${given ? given.pathname + given.search : path}`);
    const method = init.method ?? 'GET';
    const body = init.body;
    const query: Record<string, string | string[]> = {};
    for (const key of new Set(url.searchParams.keys())) {
      const values = url.searchParams.getAll(key);
      query[key] = values.length > 1 ? values : values[0]!;
    }
    const signed = await this.#signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port && { port: Number(url.port) }),
      path: url.pathname,
      query,
      headers: { host: url.host, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body }),
    });
    return { url, method, headers: signed.headers, ...(body !== undefined && { body }) };
  }
}
