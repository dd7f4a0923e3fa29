import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';

/** The dashboard's files, bundled beside this handler (the stack builds them at synth). */
export const DASHBOARD_FILES: Readonly<Record<string, string>> = { 'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8' };
const dir = join(dirname(fileURLToPath(import.meta.url)), 'dashboard');
/** What every dashboard file is served with: its own origin only, no framing, no referrer. */
export const DASHBOARD_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * `GET /dashboard/` and its two files: the dashboard's code, and nothing else. It holds no data:
 * the page reads the API itself, signing each call with the session credentials it was opened
 * with (`lethe dashboard --link`), which never leave the browser.
 */
export const handler = (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
  const name = event.pathParameters?.['file'] ?? 'index.html';
  const type = DASHBOARD_FILES[name];
  if (!type) return Promise.resolve({ statusCode: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' });
  let body = readFileSync(join(dir, name), 'utf8');
  if (name === 'index.html') {
    // The page's links and API calls resolve against /<stage>/dashboard/, with or without a trailing slash in the address.
    const base = `${(event.requestContext.path ?? event.path).replace(/\/dashboard(\/.*)?$/, '')}/dashboard/`;
    body = body.replace('<head>', `<head>\n  <base href="${base.replace(/[^A-Za-z0-9/_.~-]/g, '')}">`);
  }
  return Promise.resolve({ statusCode: 200, headers: { ...DASHBOARD_HEADERS, 'content-type': type }, body });
};
