import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { ValidationError } from '#core/errors';
import { normalizeIdentities, pseudonymize } from '#core/identity';
import { identitiesSchema, zodIssues } from '#core/request';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, parseJsonBody } from '../commons/http.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const store = new RequestStore(requireEnv('REQUESTS_TABLE'));
const keys = keyServiceFromEnv();
const lookupSchema = z.strictObject({ identities: identitiesSchema });

/**
 * `POST /v1/subjects:lookup` with `{"identities": [{type, value}]}`: every request of the subject
 * any of them names, oldest first. The identities are normalized and pseudonymized as at intake
 * and go no further: the lookup is by pseudonym, the answer holds none, nothing is logged.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const body = lookupSchema.safeParse(parseJsonBody(event.body, event.isBase64Encoded));
    if (!body.success) throw new ValidationError(zodIssues(body.error));
    const key = await keys.pseudonymKey();
    const pseudonyms = normalizeIdentities(body.data.identities).map((i) => pseudonymize(i, key));
    const requests = await store.getListed((await store.requestsOfSubject(pseudonyms)).map((r) => r.requestId));
    return json(200, { requests });
  });
