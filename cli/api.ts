import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignedApi } from '../client/http.ts';
import { readLocalState } from './local-state.ts';

/** What the API answered: status, headers and the body as text (JSON read with `json()`). */
export interface ApiAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/** Which of the stack's roles a call is made as, in local mode (a deployed stack: whoever the credential chain gives). */
export type LocalRole = 'ComplianceRole' | 'OperatorRole' | 'SubmitterRole';

/** A setup problem the CLI reports with exit code 2. */
export class ApiSetupError extends Error {
  override readonly name = 'ApiSetupError';
}

/**
 * Lethe's HTTP API, every call signed with SigV4 (service `execute-api`), as API Gateway's IAM
 * authorization and local mode both require: a deployed stack's URL with the standard AWS
 * credential chain (environment, profile, SSO, instance role), or local mode with its local
 * key for a role.
 */
export class LetheApi extends SignedApi {
  /**
   * The API to talk to: `apiUrl` (or `LETHE_API_URL`), a deployed stack, signed with the AWS
   * credential chain; otherwise the local mode running from `stateDir`, as `role`.
   */
  static connect(options: { apiUrl?: string | undefined; stateDir: string; role: LocalRole }): LetheApi {
    const apiUrl = options.apiUrl ?? process.env['LETHE_API_URL'];
    if (apiUrl) {
      const region = /execute-api\.([a-z0-9-]+)\.amazonaws\.com/.exec(apiUrl)?.[1] ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'];
      if (!region) throw new ApiSetupError(`cannot tell the region of ${apiUrl}: set AWS_REGION`);
      return new LetheApi(apiUrl, defaultProvider(), region);
    }
    const local = readLocalState(options.stateDir);
    if (!local) throw new ApiSetupError(`no local mode state in ${options.stateDir}: start local mode (npm start), or give --api <url> of a deployed stack`);
    const key = local.credentials[options.role];
    if (!key) throw new ApiSetupError(`local mode in ${options.stateDir} has no key for ${options.role}: restart it with this version`);
    return new LetheApi(local.apiUrl, key, local.region);
  }

  async request(method: string, path: string, options: { query?: URLSearchParams; body?: unknown } = {}): Promise<ApiAnswer> {
    const query = options.query?.toString();
    const response = await this.fetch(`${path}${query ? `?${query}` : ''}`, { method, ...(options.body !== undefined && { body: JSON.stringify(options.body) }) });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      text,
      json: <T>() => (text ? JSON.parse(text) : {}) as T,
    };
  }

  get(path: string, query?: URLSearchParams): Promise<ApiAnswer> {
    return this.request('GET', path, query ? { query } : {});
  }

  post(path: string, body: unknown): Promise<ApiAnswer> {
    return this.request('POST', path, { body });
  }
}
