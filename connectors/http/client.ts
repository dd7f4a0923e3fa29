import { search } from '@jmespath-community/jmespath';
import { RateLimiter } from 'limiter';
import { createHash } from 'node:crypto';
import { ConnectorPermanentError, ConnectorRetryableError } from '#core/errors';
import { callWithRetries, DEFAULT_RETRY_POLICY, networkError, parseBody, scrub, type Answer, type RetryPolicy } from '../http-transport.ts';
import type { HttpRequest, VendorDefinition } from './definition.ts';
import { pathSegment, render, renderJson, type TemplateVars } from './template.ts';

export interface VendorResponse {
  readonly status: number;
  /** The status was one of the request's `absent` ones: no such record. */
  readonly absent: boolean;
  readonly body: unknown;
}

export type ClientOptions = Partial<RetryPolicy>;

/** Token buckets per vendor and credential, shared by every system of this container. */
const buckets = new Map<string, RateLimiter>();

/**
 * One vendor's HTTP API as its definition describes it: authentication (bearer, header, query,
 * basic, OAuth2 client credentials, with the token cached until it expires), a token bucket per
 * vendor and credential, 429 answers waited out (`Retry-After`), 5xx and network failures retried,
 * and errors typed: retryable, or permanent with the vendor's message scrubbed of the subject's
 * identities and of credentials. Messages name the request by its template, never its values.
 */
export class VendorClient {
  readonly #def: VendorDefinition;
  readonly #base: TemplateVars;
  readonly #baseUrl: URL;
  readonly #bucket: RateLimiter | undefined;
  readonly #options: RetryPolicy;
  readonly #secrets: string[];
  #oauth: { token: string; expiresAt: number } | undefined;

  /** `base`: `params` and `credentials` of the system. */
  constructor(def: VendorDefinition, base: { params: Record<string, string>; credentials: Record<string, string> }, baseUrl?: string, options: ClientOptions = {}) {
    this.#def = def;
    this.#base = base;
    this.#baseUrl = new URL(render(baseUrl ?? def.baseUrl, base));
    this.#secrets = Object.values(base.credentials);
    this.#options = { ...DEFAULT_RETRY_POLICY, ...options };
    if (def.rateLimit) {
      const key = `${def.name}:${createHash('sha256').update(this.#secrets.join('\u0000')).digest('hex')}`;
      if (!buckets.has(key)) {
        buckets.set(key, new RateLimiter({ tokensPerInterval: def.rateLimit.requests, interval: def.rateLimit.perSeconds * 1000 }));
      }
      this.#bucket = buckets.get(key);
    }
  }

  get name(): string {
    return this.#def.name;
  }

  /** Send a request; `sensitive` are values to scrub from any error text (the subject's identities). */
  async call(request: HttpRequest, vars: TemplateVars, sensitive: readonly string[]): Promise<VendorResponse> {
    const all: TemplateVars = { ...this.#base, ...vars };
    const what = `${this.#def.name} ${request.method} ${request.path}`;
    const failure = ({ response, text }: Answer) => `${what}: HTTP ${String(response.status)}${this.#vendorMessage(parseBody(text), sensitive)}`;
    for (let refreshed = false; ; refreshed = true) {
      const answer = await callWithRetries(
        what,
        async (signal) => {
          await this.#bucket?.removeTokens(1);
          return fetch(await this.#url(request, all), {
            method: request.method,
            headers: await this.#headers(request, all),
            ...bodyOf(request, all),
            signal,
            redirect: 'error',
          });
        },
        failure,
        this.#options,
      );
      const { status } = answer.response;
      const body = parseBody(answer.text);
      if (request.ok.includes(status)) return { status, absent: false, body };
      if (request.absent.includes(status)) return { status, absent: true, body };
      // An OAuth2 token the vendor no longer takes: fetch a new one, once.
      if (status === 401 && this.#def.auth.type === 'oauth2' && !refreshed) {
        this.#oauth = undefined;
        continue;
      }
      throw new ConnectorPermanentError(failure(answer));
    }
  }

  async #url(request: HttpRequest, vars: TemplateVars): Promise<URL> {
    const path = render(request.path, vars, pathSegment);
    const url = /^https?:\/\//.test(path) ? new URL(path) : new URL(this.#baseUrl.pathname.replace(/\/$/, '') + path, this.#baseUrl);
    // Credentials go to the vendor's own origin only, whatever a pagination link says.
    if (url.origin !== this.#baseUrl.origin) throw new ConnectorPermanentError(`${this.#def.name}: a link leads away from ${this.#baseUrl.origin}`);
    for (const [name, value] of Object.entries(request.query ?? {})) url.searchParams.set(name, render(value, vars));
    const auth = this.#def.auth;
    if (auth.type === 'query') url.searchParams.set(auth.name, this.#credential(auth.credential));
    return Promise.resolve(url);
  }

  async #headers(request: HttpRequest, vars: TemplateVars): Promise<Headers> {
    const headers = new Headers({ accept: 'application/json', 'user-agent': 'lethe' });
    for (const [name, value] of Object.entries({ ...this.#def.headers, ...request.headers })) headers.set(name, render(value, vars));
    if (request.json !== undefined) headers.set('content-type', 'application/json');
    if (request.form !== undefined) headers.set('content-type', 'application/x-www-form-urlencoded');
    if (request.text !== undefined) headers.set('content-type', request.text.contentType);
    const auth = this.#def.auth;
    switch (auth.type) {
      case 'bearer':
        headers.set('authorization', `Bearer ${this.#credential(auth.credential)}`);
        break;
      case 'header':
        headers.set(auth.name, `${auth.prefix}${this.#credential(auth.credential)}`);
        break;
      case 'basic':
        headers.set('authorization', `Basic ${Buffer.from(`${render(auth.username, vars)}:${render(auth.password, vars)}`).toString('base64')}`);
        break;
      case 'oauth2':
        headers.set('authorization', `Bearer ${await this.#oauthToken()}`);
        break;
      default:
        break;
    }
    return headers;
  }

  /** OAuth2 client credentials (RFC 6749 §4.4), the token kept until shortly before it expires. */
  async #oauthToken(): Promise<string> {
    const auth = this.#def.auth;
    if (auth.type !== 'oauth2') throw new ConnectorPermanentError('not OAuth2');
    if (this.#oauth && this.#oauth.expiresAt > Date.now()) return this.#oauth.token;
    const form = new URLSearchParams({ grant_type: 'client_credentials', ...(auth.scope ? { scope: auth.scope } : {}) });
    const basic = Buffer.from(`${encodeURIComponent(this.#credential(auth.clientId))}:${encodeURIComponent(this.#credential(auth.clientSecret))}`).toString('base64');
    let response: Response;
    try {
      response = await fetch(new URL(render(auth.tokenUrl, this.#base), this.#baseUrl), {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form,
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
    } catch (cause) {
      throw new ConnectorRetryableError(`${this.#def.name} OAuth2 token: ${networkError(cause)}`, { cause });
    }
    const body = parseBody(await response.text()) as { access_token?: string; expires_in?: number } | undefined;
    if (!response.ok || !body?.access_token) {
      const message = `${this.#def.name} OAuth2 token: HTTP ${String(response.status)}`;
      throw response.status >= 500 || response.status === 429 ? new ConnectorRetryableError(message) : new ConnectorPermanentError(message);
    }
    this.#oauth = { token: body.access_token, expiresAt: Date.now() + Math.max(0, (body.expires_in ?? 3600) - 60) * 1000 };
    return this.#oauth.token;
  }

  #credential(name: string): string {
    const value = (this.#base['credentials'] as Record<string, string>)[name];
    if (!value) throw new ConnectorPermanentError(`${this.#def.name}: credential "${name}" is not configured`);
    return value;
  }

  /** The vendor's own error text, without the subject's identities or any credential, and short. */
  #vendorMessage(body: unknown, sensitive: readonly string[]): string {
    let text: unknown;
    try {
      text = this.#def.errorMessage && body !== undefined && typeof body === 'object' ? search(body as never, this.#def.errorMessage) : undefined;
    } catch {
      text = undefined;
    }
    if (typeof text !== 'string' || text.length === 0) return '';
    return `: ${scrub(text, [...sensitive, ...this.#secrets])}`;
  }
}

function bodyOf(request: HttpRequest, vars: TemplateVars): { body?: string } {
  if (request.json !== undefined) return { body: JSON.stringify(renderJson(request.json, vars)) };
  if (request.form !== undefined) {
    return { body: new URLSearchParams(Object.entries(request.form).map(([k, v]): [string, string] => [k, render(v, vars)])).toString() };
  }
  if (request.text !== undefined) return { body: render(request.text.body, vars) };
  return {};
}

/** Evaluate a JMESPath expression; a response that is not JSON yields null. */
export function extract(body: unknown, expression: string): unknown {
  if (body === undefined || typeof body === 'string') return null;
  return search(body as never, expression);
}
