import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LetheApi } from '../cli/api.ts';
import { DASHBOARD_FILES, DASHBOARD_HEADERS } from '#functions/serve-dashboard/handler';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'dashboard');
const PREFIX = '/dashboard/';
/** Reading is all the dashboard does: these API paths, GET only. */
const READABLE = /^\/v1\/(requests(\/[^/]+(\/receipt)?)?|reports\/summary|receipts\/public-key)$/;

let bundle: Promise<string> | undefined;

/** The dashboard's script, bundled with Chart.js once per process (esbuild loaded then, not by every `lethe` command). */
function script(): Promise<string> {
  bundle ??= import('esbuild').then(({ build }) => build({ entryPoints: [join(DIR, 'app.ts')], bundle: true, write: false, format: 'esm', platform: 'browser', target: 'es2022', minify: true, logLevel: 'silent' })).then(
    (out) => out.outputFiles[0]!.text,
  );
  return bundle;
}

/**
 * Serves the web dashboard under `/dashboard/`, and its reads of the API under
 * `/dashboard/api/v1/…`, signed by `api` (local mode: as the compliance role; `lethe dashboard`:
 * with the operator's AWS credentials). The browser holds no credentials; nothing but GETs of
 * requests, reports, receipts and the public key passes. True when it answered.
 */
export function dashboard(api: () => LetheApi): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean> {
  return async (req, res, url) => {
    if (url.pathname === '/dashboard') return redirect(res, PREFIX);
    if (!url.pathname.startsWith(PREFIX)) return false;
    const path = url.pathname.slice(PREFIX.length - 1);
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'the dashboard only reads');
    const file = path === '/' ? 'index.html' : path.slice(1);
    const type = DASHBOARD_FILES[file];
    if (type) return send(res, 200, type, file === 'app.js' ? await script() : readFileSync(join(DIR, file)));
    if (path.startsWith('/api/')) {
      const apiPath = path.slice('/api'.length);
      if (!READABLE.test(apiPath)) return send(res, 404, 'application/json', JSON.stringify({ message: `the dashboard does not read ${apiPath}` }));
      const answer = await api().fetch(`${apiPath}${url.search}`);
      const headers: Record<string, string> = { 'content-type': answer.headers.get('content-type') ?? 'application/json', 'cache-control': 'no-store' };
      const disposition = answer.headers.get('content-disposition');
      if (disposition) headers['content-disposition'] = disposition;
      res.writeHead(answer.status, headers);
      res.end(Buffer.from(await answer.arrayBuffer()));
      return true;
    }
    return send(res, 404, 'text/plain', 'not found');
  };
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): true {
  res.writeHead(status, { ...DASHBOARD_HEADERS, 'content-type': type });
  res.end(body);
  return true;
}

function redirect(res: ServerResponse, to: string): true {
  res.writeHead(302, { location: to });
  res.end();
  return true;
}
