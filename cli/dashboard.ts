import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { dashboard } from '../local/dashboard.ts';
import { ApiSetupError, LetheApi } from './api.ts';

const USAGE = `usage: lethe dashboard [--api <url>] [--port <n>] [--state-dir <dir>]

  Serves the web dashboard on http://127.0.0.1:<port>/dashboard/ (default port 8080) for a
  deployed stack's API (--api or LETHE_API_URL), reading it with your AWS credentials (SigV4,
  the usual chain: assume the stack's ComplianceRole). The browser gets no credentials, and the
  dashboard only reads. Local mode serves the same dashboard itself, at <its URL>/dashboard/.`;

/** \`lethe dashboard\`: the dashboard for a deployed stack, on this machine. Runs until Ctrl-C. */
export async function dashboardCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      api: { type: 'string' },
      port: { type: 'string', default: '8080' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return (console.log(USAGE), 0);
  let api: LetheApi;
  try {
    api = LetheApi.connect({ apiUrl: values.api, stateDir: values['state-dir'], role: 'ComplianceRole' });
  } catch (error) {
    if (!(error instanceof ApiSetupError)) throw error;
    console.error(`lethe dashboard: ${error.message}`);
    return 2;
  }
  const serve = dashboard(() => api);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    serve(req, res, url)
      .then((answered) => {
        if (answered) return;
        res.writeHead(302, { location: '/dashboard/' });
        res.end();
      })
      .catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`lethe dashboard: ${(error as Error).message}`);
      });
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(Number(values.port), '127.0.0.1', ok));
  console.log(`Lethe dashboard for ${api.baseUrl}: http://127.0.0.1:${values.port}/dashboard/  (Ctrl-C stops it)`);
  await new Promise<void>((ok) => process.once('SIGINT', ok).once('SIGTERM', ok));
  server.close();
  return 0;
}
