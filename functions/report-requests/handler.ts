import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { ValidationError } from '#core/errors';
import { EXPORT_COLUMNS, summarize, toCsv } from '#core/report';
import { zodIssues } from '#core/request';
import { requireEnv } from '../commons/env.ts';
import { httpErrors, json } from '../commons/http.ts';
import { observe } from '../commons/observability.ts';
import { RequestStore } from '../commons/request-store.ts';

const store = new RequestStore(requireEnv('REQUESTS_TABLE'));

/** An export stays well inside Lambda's 6 MB answer; a summary reads at most this many requests. */
const MAX_EXPORT = 20_000;
const MAX_SUMMARY = 200_000;
const DAY = 24 * 3600 * 1000;

const instant = z.iso.datetime({ offset: true }).transform((d) => new Date(d).toISOString());
const periodSchema = z.strictObject({
  since: instant.optional(),
  until: instant.optional(),
  format: z.enum(['json', 'csv']).default('json'),
});

/**
 * `GET /v1/reports/summary?since&until` (default: the last 30 days): counts by status, regulation
 * and type, overdue and late, completed with nothing found, median and p95 hours to completion,
 * volume per day.
 * `GET /v1/reports/export?since&until&format=csv|json`: every request of the period, one row each.
 * Both by time of receipt, through the ByMonth index.
 */
export const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
  .use(observe())
  .use(httpErrors())
  .handler(async (event) => {
    const query = periodSchema.safeParse(event.queryStringParameters ?? {});
    if (!query.success) throw new ValidationError(zodIssues(query.error));
    const now = new Date();
    const until = query.data.until ?? now.toISOString();
    const since = query.data.since ?? new Date(Date.parse(until) - 30 * DAY).toISOString();
    if (since > until) throw new ValidationError([{ path: 'since', message: 'must not be after until' }]);
    const isExport = event.resource === '/v1/reports/export';
    if (!isExport && query.data.format !== 'json') throw new ValidationError([{ path: 'format', message: 'the summary is JSON; format is for exports' }]);
    const requests = await store.receivedBetween(since, until, isExport ? MAX_EXPORT : MAX_SUMMARY, now);
    if (!isExport) return json(200, summarize(requests, since, until, await store.countNothingFound(since, until)));
    const filename = `lethe-requests-${since.slice(0, 10)}-${until.slice(0, 10)}`;
    const rows = await store.withNothingFound(requests);
    if (query.data.format === 'json') {
      return { ...json(200, { since, until, requests: rows.map((r) => Object.fromEntries(EXPORT_COLUMNS.map((c) => [c, r[c] ?? null]))) }), headers: { 'content-type': 'application/json', 'content-disposition': `attachment; filename="${filename}.json"` } };
    }
    return { statusCode: 200, headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="${filename}.csv"` }, body: toCsv(rows) };
  });
