import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { ValidationError } from '#core/errors';
import { normalizeEach, pseudonymize } from '#core/identity';
import { identitySchema, zodIssues } from '#core/request';
import { SCOPES, verdict } from '#core/suppression';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json, parseJsonBody } from '../commons/http.ts';
import { keyServiceFromEnv } from '../commons/keys.ts';
import { observe } from '../commons/observability.ts';
import { SuppressionStore } from '../commons/suppression-store.ts';

const store = new SuppressionStore(requireEnv('SUPPRESSIONS_TABLE'));
const keys = keyServiceFromEnv();

/** At most this many identities a call: ten reads of DynamoDB's largest batch. */
export const MAX_CHECKED = 1000;
const checkSchema = z.strictObject({
  identities: z.array(identitySchema).min(1, 'at least one identity is required').max(MAX_CHECKED, `at most ${String(MAX_CHECKED)} identities a call`),
  scope: z.enum(SCOPES).optional(),
});

/**
 * `POST /v1/suppressions:check` with `{"identities": [{type, value}], "scope"?}`: for each identity,
 * in the order given, whether using it is forbidden (for `scope`, or for anything), the scopes in
 * force and since when. Identities are normalized and pseudonymized as at intake and go no
 * further: the answer names none, and nothing is logged.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const body = checkSchema.safeParse(parseJsonBody(event.body, event.isBase64Encoded));
    if (!body.success) throw new ValidationError(zodIssues(body.error));
    const key = await keys.pseudonymKey();
    const pseudonyms = normalizeEach(body.data.identities).map((i) => pseudonymize(i, key));
    const suppressions = await store.get(pseudonyms);
    return json(200, { results: suppressions.map((s) => verdict(s, body.data.scope)) });
  });
