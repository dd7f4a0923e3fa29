import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { decodeFilter, type FuseFilter } from '../core/filter.ts';
import { normalizeIdentity, type Identity, type PseudonymKey } from '../core/identity.ts';
import type { Submission } from '../core/request.ts';
import { snapshotCheck } from '../core/stream-filter.ts';
import type { Scope } from '../core/suppression.ts';
import { SignedApi } from './http.ts';

export type { Identity } from '../core/identity.ts';
export type { Regulation, RequestType, Submission } from '../core/request.ts';
export type { Scope } from '../core/suppression.ts';
export { toRequest, InvalidSignalError, type SignalInput } from './signals.ts';

/** What the API answered a submission: the request's id, where it stands, and when it is due. */
export interface Accepted {
  readonly requestId: string;
  readonly status: string;
  readonly dueAt: string;
}

/** One identity's answer from `POST /v1/suppressions:check`. */
export interface Verdict {
  readonly suppressed: boolean;
  readonly scopes: readonly Scope[];
  readonly since?: string;
}

/** A call the API refused or failed: its status and the error it named. */
export class LetheError extends Error {
  override readonly name = 'LetheError';
  readonly status: number;
  readonly body: unknown;
  /** Worth trying again (throttled, or the service had a problem): 429 and 5xx. */
  readonly retryable: boolean;

  constructor(status: number, body: unknown, what: string) {
    const detail = typeof body === 'object' && body && 'message' in body ? String((body).message) : '';
    super(`${what}: HTTP ${String(status)}${detail ? ` ${detail}` : ''}`);
    this.status = status;
    this.body = body;
    this.retryable = status === 429 || status >= 500;
  }
}

/** The one call `submit` needs of an EventBridge client (`@aws-sdk/client-eventbridge`'s `EventBridgeClient`). */
export interface EventBusClient {
  send(command: object): Promise<{ FailedEntryCount?: number; Entries?: { ErrorCode?: string; ErrorMessage?: string }[] }>;
}

export interface LetheClientOptions {
  /** The API's URL: the stack's `ApiUrl` output, or local mode's `http://127.0.0.1:3000`. */
  readonly apiUrl: string;
  /** @default the region in `apiUrl`, else `AWS_REGION` */
  readonly region?: string;
  /** @default the AWS SDK's default credential chain (environment, profile, SSO, instance or task role) */
  readonly credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Submit with PutEvents to this bus (the stack's `EventBusName` output) instead of over HTTP. */
  readonly eventBus?: { readonly name: string; readonly client: EventBusClient; readonly source?: string };
  /** How long a fetched filter snapshot is used before it is fetched again. @default 60 s */
  readonly snapshotMaxAgeMs?: number;
}

/**
 * Lethe for a product backend: submit privacy requests, and ask whether an identity may be used
 * before collecting, selling or sharing it — at once, from a filter snapshot held in memory, with
 * only its hits (the suppressed, and 1 in 256 others) confirmed by the API.
 *
 * ```ts
 * const lethe = new LetheClient({ apiUrl: process.env.LETHE_API_URL! });
 * if (await lethe.isSuppressed({ type: 'email', value: user.email }, 'sale')) return;
 * ```
 */
export class LetheClient {
  readonly #api: SignedApi;
  readonly #options: LetheClientOptions;
  readonly #snapshot: SuppressionSnapshot;

  constructor(options: LetheClientOptions) {
    this.#options = options;
    const region = options.region ?? /execute-api\.([a-z0-9-]+)\.amazonaws\.com/.exec(options.apiUrl)?.[1] ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'];
    if (!region) throw new TypeError(`LetheClient: cannot tell the region of ${options.apiUrl}; give region`);
    this.#api = new SignedApi(options.apiUrl, options.credentials ?? defaultCredentials(), region);
    this.#snapshot = new SuppressionSnapshot(
      {
        link: () => this.#call('GET', '/v1/suppressions/filter', undefined, 'fetch the suppression filter') as Promise<FilterLink>,
        confirm: (identities, scope) => this.check(identities, scope),
      },
      options.snapshotMaxAgeMs,
    );
  }

  /** Submit a privacy request (an `opt_out` from `toRequest`, an erasure...): over HTTP, or to the bus. */
  async submit(submission: Submission): Promise<Accepted | { readonly eventId: string }> {
    const bus = this.#options.eventBus;
    if (!bus) return (await this.#call('POST', '/v1/requests', submission, 'submit')) as Accepted;
    const { PutEventsCommand } = await import('@aws-sdk/client-eventbridge');
    const out = await bus.client.send(
      new PutEventsCommand({ Entries: [{ EventBusName: bus.name, Source: bus.source ?? 'lethe.client', DetailType: 'Privacy Request Submitted', Detail: JSON.stringify(submission) }] }),
    );
    const entry = (out as { Entries?: { EventId?: string; ErrorCode?: string; ErrorMessage?: string }[] }).Entries?.[0];
    if (out.FailedEntryCount || !entry?.EventId) throw new LetheError(500, { message: `${entry?.ErrorCode ?? 'PutEvents failed'} ${entry?.ErrorMessage ?? ''}`.trim() }, 'submit');
    return { eventId: entry.EventId };
  }

  /** The API's verdicts, in order (any number: a thousand a call). Authoritative, one round trip a thousand. */
  async check(identities: readonly Identity[], scope?: Scope): Promise<Verdict[]> {
    const out: Verdict[] = [];
    for (let i = 0; i < identities.length; i += 1000) {
      const body = await this.#call('POST', '/v1/suppressions:check', { identities: identities.slice(i, i + 1000), ...(scope && { scope }) }, 'check');
      out.push(...(body as { results: Verdict[] }).results);
    }
    return out;
  }

  /** Whether `identity` must not be used (for `scope`, or at all): the snapshot first, the API for its hits. */
  async isSuppressed(identity: Identity, scope?: Scope): Promise<boolean> {
    return (await this.areSuppressed([identity], scope))[0]!;
  }

  /** `isSuppressed` for many identities at once, in order: one API call for all the snapshot's hits. */
  areSuppressed(identities: readonly Identity[], scope?: Scope): Promise<boolean[]> {
    return this.#snapshot.check(identities, scope);
  }

  /** The filter snapshot this client holds (to refresh it ahead of time, or to see how old it is). */
  get snapshot(): SuppressionSnapshot {
    return this.#snapshot;
  }

  /** A signed call; a non-2xx answer throws a `LetheError`. */
  async #call(method: string, path: string, body: unknown, what: string): Promise<unknown> {
    const response = await this.#api.fetch(path, { method, ...(body !== undefined && { body: JSON.stringify(body) }) });
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as unknown) : {};
    if (!response.ok) throw new LetheError(response.status, parsed, what);
    return parsed;
  }
}

/** `GET /v1/suppressions/filter`'s answer. */
export interface FilterLink {
  readonly format: string;
  readonly keyVersion: string;
  readonly filterKey: string;
  readonly count: number;
  readonly bytes: number;
  readonly falsePositiveRate: number;
  readonly builtAt: string;
  readonly url: string;
}

/** Where a snapshot gets its filter, and asks about its hits. */
export interface SnapshotSource {
  link(): Promise<FilterLink>;
  confirm(identities: readonly Identity[], scope?: Scope): Promise<readonly Verdict[]>;
}

/**
 * The suppression filter, held in memory and fetched again once it is older than its maximum age
 * (Lethe publishes a new one within a minute or two of each change). A miss is definitive; a hit
 * is confirmed with the API. Until a filter is fetched (or while Lethe has none), every identity is
 * asked about: slower, never wrong.
 */
export class SuppressionSnapshot {
  readonly #api: SnapshotSource;
  readonly #maxAgeMs: number;
  #held: { filter: FuseFilter; filterKey: PseudonymKey; builtAt: string; at: number } | undefined;
  #fetching: Promise<void> | undefined;

  constructor(api: SnapshotSource, maxAgeMs = 60_000) {
    this.#api = api;
    this.#maxAgeMs = maxAgeMs;
  }

  /** When the filter in use was built, and how many suppressed identities it holds; undefined before the first fetch. */
  get info(): { readonly builtAt: string; readonly count: number } | undefined {
    return this.#held && { builtAt: this.#held.builtAt, count: this.#held.filter.size };
  }

  /** Fetch the filter now (calls share one fetch at a time). A 503 (none published yet) leaves none held. */
  refresh(): Promise<void> {
    this.#fetching ??= this.#fetch().finally(() => (this.#fetching = undefined));
    return this.#fetching;
  }

  async check(identities: readonly Identity[], scope?: Scope): Promise<boolean[]> {
    const normalized = identities.map((i) => normalizeIdentity(i));
    if (!this.#held || Date.now() - this.#held.at >= this.#maxAgeMs) {
      // A failed fetch keeps the filter held for ten maximum ages more, then asks the API about everything.
      await this.refresh().catch(() => {
        if (this.#held && Date.now() - this.#held.at > 10 * this.#maxAgeMs) this.#held = undefined;
      });
    }
    const held = this.#held;
    const check = snapshotCheck(
      () => held,
      async (candidates) => (await this.#api.confirm(candidates, scope)).map((v) => v.suppressed),
    );
    return [...(await check(normalized))];
  }

  async #fetch(): Promise<void> {
    let link: FilterLink;
    try {
      link = await this.#api.link();
    } catch (error) {
      if (error instanceof LetheError && error.status === 503) {
        this.#held = undefined;
        return;
      }
      throw error;
    }
    if (link.format !== 'lethe-binary-fuse-8/1') throw new Error(`unknown suppression filter format ${link.format}: update @lethe/client`);
    const download = await fetch(link.url);
    if (!download.ok) throw new LetheError(download.status, {}, 'download the suppression filter');
    this.#held = {
      filter: decodeFilter(new Uint8Array(await download.arrayBuffer())),
      filterKey: { version: link.keyVersion, key: new Uint8Array(Buffer.from(link.filterKey, 'base64url')) },
      builtAt: link.builtAt,
      at: Date.now(),
    };
  }
}

function defaultCredentials(): AwsCredentialIdentityProvider {
  let provider: AwsCredentialIdentityProvider | undefined;
  return async () => {
    provider ??= (await import('@aws-sdk/credential-provider-node')).defaultProvider();
    return provider();
  };
}
