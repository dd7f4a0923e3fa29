import { parseArgs } from 'node:util';
import { readLocalState } from './local-state.ts';

const STATUS_USAGE = `usage: lethe status <request id> [--state-dir <dir>] [--json]

  Where one request stands: its deadline, whether it is overdue, and per system the action,
  status, records affected, attempts and last error (class and scrubbed message).
  Exit codes: 0 shown, 1 no such request, 2 usage or connection error.`;

const LIST_USAGE = `usage: lethe list [--status <s>] [--type <t>] [--regulation <r>] [--overdue | --on-time]
                  [--since <date>] [--until <date>] [--limit <n>] [--all] [--state-dir <dir>] [--json]

  Requests, newest first (with --overdue, most overdue first), a page of --limit (default 50);
  --all follows every page. Exit codes: 0 listed, 2 usage or connection error.`;

interface Listed {
  requestId: string;
  type: string;
  regulation: string;
  status: string;
  receivedAt: string;
  dueAt: string;
  overdue: boolean;
  completedAt: string | null;
}

/** Local mode's API; a deployed stack's needs SigV4 (not in the CLI yet: use curl --aws-sigv4 or the SDK). */
function apiOf(stateDir: string): string | undefined {
  return readLocalState(stateDir)?.apiUrl;
}

/** A message from an error answer. */
const messageOf = (body: Record<string, unknown>, status: number) => (typeof body['message'] === 'string' ? body['message'] : `HTTP ${String(status)}`);

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** `lethe status <id>`. */
export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { 'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) return (console.log(STATUS_USAGE), 0);
  const api = apiOf(values['state-dir']);
  if (positionals.length !== 1 || !api) {
    console.error(api ? STATUS_USAGE : `lethe status: no local mode state in ${values['state-dir']}: start local mode (npm start)`);
    return 2;
  }
  const { status, body } = await getJson(`${api}/v1/requests/${encodeURIComponent(positionals[0]!)}`);
  if (status !== 200) {
    console.error(`lethe status: ${messageOf(body, status)}`);
    return status === 404 ? 1 : 2;
  }
  if (values.json) return (console.log(JSON.stringify(body, null, 2)), 0);
  const r = body as unknown as Listed & { systems: { system: string; action: string; status: string; affected: number | null; attempts: number; error?: { name: string; message: string } }[] };
  console.log(`${r.requestId}  ${r.type} under ${r.regulation}: ${r.status}${r.completedAt ? ` at ${r.completedAt}` : ''}`);
  console.log(`  received ${r.receivedAt}, due ${r.dueAt}${r.overdue ? '  OVERDUE' : ''}`);
  for (const s of r.systems) {
    const affected = s.affected === null ? '' : `, ${String(s.affected)} records`;
    console.log(`  ${s.system.padEnd(20)} ${s.action.padEnd(9)} ${s.status}${affected}, ${String(s.attempts)} attempt${s.attempts === 1 ? '' : 's'}${s.error ? ` (${s.error.name}: ${s.error.message})` : ''}`);
  }
  return 0;
}

/** `lethe list`. */
export async function listCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      status: { type: 'string' },
      type: { type: 'string' },
      regulation: { type: 'string' },
      overdue: { type: 'boolean', default: false },
      'on-time': { type: 'boolean', default: false },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
      all: { type: 'boolean', default: false },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return (console.log(LIST_USAGE), 0);
  const api = apiOf(values['state-dir']);
  if (positionals.length > 0 || (values.overdue && values['on-time']) || !api) {
    console.error(api ? LIST_USAGE : `lethe list: no local mode state in ${values['state-dir']}: start local mode (npm start)`);
    return 2;
  }
  const query = new URLSearchParams();
  for (const name of ['status', 'type', 'regulation', 'since', 'until', 'limit'] as const) if (values[name] !== undefined) query.set(name, values[name]);
  if (values.overdue || values['on-time']) query.set('overdue', String(values.overdue));
  const requests: Listed[] = [];
  for (let cursor: string | undefined, first = true; first || (values.all && cursor); first = false) {
    if (cursor) query.set('cursor', cursor);
    const { status, body } = await getJson(`${api}/v1/requests?${query.toString()}`);
    if (status !== 200) {
      const issues = (body['issues'] as { path: string; message: string }[] | undefined)?.map((i) => `--${i.path} ${i.message}`).join('; ');
      console.error(`lethe list: ${issues ?? messageOf(body, status)}`);
      return 2;
    }
    requests.push(...(body['requests'] as Listed[]));
    cursor = body['cursor'] as string | undefined;
    if (!values.all && cursor && !values.json) console.error('(more: --all follows every page)');
  }
  if (values.json) return (console.log(JSON.stringify(requests, null, 2)), 0);
  for (const r of requests) {
    console.log(`${r.requestId}  ${r.type.padEnd(9)} ${r.regulation.padEnd(5)} ${r.status.padEnd(16)} received ${r.receivedAt.slice(0, 16)}  due ${r.dueAt.slice(0, 16)}${r.overdue ? '  OVERDUE' : ''}`);
  }
  console.log(`${String(requests.length)} request${requests.length === 1 ? '' : 's'}`);
  return 0;
}
