import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { NotReadyError } from '#core/errors';
import { FILTER_KEY, filterKeyOf } from '#core/suppression';
import { s3 } from '../commons/clients.ts';
import { requireEnv } from '../commons/env.ts';
import { json, httpErrors } from '../commons/http.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { observe } from '../commons/observability.ts';
import { filterInfo } from '../commons/suppression-snapshot.ts';

const bucket = requireEnv('SNAPSHOT_BUCKET');
const keys = keyServiceFromEnv();
/** How long the filter's download link holds. */
const LINK_SECONDS = 300;

/**
 * `GET /v1/suppressions/filter`: what a product backend needs to check identities offline — the
 * filter key (to compute an identity's tag), a short-lived link to the published filter, and how
 * many subjects it holds and when it was built. The filter key yields no pseudonym and opens
 * nothing else; it answers exactly what `suppressions:check` answers to the same caller.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async () => {
    const info = await filterInfo(bucket);
    if (!info) throw new NotReadyError('the suppression filter has not been published yet; it is, within a minute of deployment', 60);
    const key = await keys.pseudonymKey();
    if (info.keyVersion !== key.version) throw new NotReadyError('the suppression filter is being rebuilt under the new pseudonym key', 60);
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: FILTER_KEY }), { expiresIn: LINK_SECONDS });
    return json(200, {
      format: 'lethe-binary-fuse-8/1',
      keyVersion: key.version,
      filterKey: Buffer.from(filterKeyOf(key).key).toString('base64url'),
      count: info.count,
      bytes: info.bytes ?? 0,
      // 8-bit fingerprints: 1 in 256 identities not suppressed is a hit, to be confirmed.
      falsePositiveRate: 1 / 256,
      builtAt: info.builtAt,
      url,
      expiresAt: new Date(Date.now() + LINK_SECONDS * 1000).toISOString(),
    });
  });
