import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { dashboard } from '../local/dashboard.ts';
import { ApiSetupError, LetheApi } from './api.ts';
import { readLocalState } from './local-state.ts';

const USAGE = `usage: lethe dashboard [--api <url>] [--port <n>] [--state-dir <dir>]
       lethe dashboard --link [--api <url>] [--state-dir <dir>]

  Serves the web dashboard on http://127.0.0.1:<port>/dashboard/ (default port 8080) for a
  deployed stack's API (--api or LETHE_API_URL), reading it with your AWS credentials (SigV4,
  the usual chain: assume the stack's ComplianceRole). The browser gets no credentials, and the
  dashboard only reads. Local mode serves the same dashboard itself, at <its URL>/dashboard/.

  --link prints a link to the dashboard the stack itself serves (<api>/dashboard/) that carries
  your session credentials in its fragment: the browser signs its reads with them and never
  sends them anywhere else. It needs temporary credentials (assume ComplianceRole first), and
  lasts as long as they do. Anyone holding the link reads as you until then: do not share it.`;

/** \`lethe dashboard\`: the dashboard for a deployed stack, on this machine. Runs until Ctrl-C. */
export async function dashboardCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      api: { type: 'string' },
      port: { type: 'string', default: '8080' },
      link: { type: 'boolean', default: false },
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
  if (values.link) return printLink(api, values.api ?? process.env['LETHE_API_URL'], values['state-dir']);
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

/** The stack's dashboard, with the caller's session in the fragment (which browsers never send). */
async function printLink(api: LetheApi, deployed: string | undefined, stateDir: string): Promise<number> {
  let session: { accessKeyId: string; secretAccessKey: string; sessionToken?: string; region: string; expiration?: string };
  if (deployed) {
    const credentials = await api.credentials();
    if (!credentials.sessionToken) {
      console.error('lethe dashboard --link: these are long-term credentials; a link carries temporary ones only: assume the stack\'s ComplianceRole first (a profile with role_arn, or aws sts assume-role)');
      return 2;
    }
    const { accessKeyId, secretAccessKey, sessionToken, expiration } = credentials;
    session = { accessKeyId, secretAccessKey, sessionToken, region: api.region, ...(expiration && { expiration: expiration.toISOString() }) };
  } else {
    const local = readLocalState(stateDir)!;
    session = { ...local.credentials['ComplianceRole']!, region: local.region };
  }
  const fragment = encodeURIComponent(Buffer.from(JSON.stringify(session)).toString('base64'));
  console.log(`${api.baseUrl}/dashboard/#${fragment}`);
  if (session.expiration) console.error(`(valid until ${session.expiration})`);
  return 0;
}
