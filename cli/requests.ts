import { readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { humanDuration } from '../core/duration.ts';
import type { ListedRequest, RequestDetail, Summary } from '../core/report.ts';
import { FINAL_REQUEST_STATUSES } from '../core/request.ts';
import { ApiSetupError, LetheApi, type ApiAnswer, type LocalRole } from './api.ts';

/**
 * The request commands: submit, status, list, watch, extend, cancel, retry, lookup, report. Each
 * talks to local mode (`--state-dir`, default `.lethe`) with the local key of the role the
 * command needs, or to a deployed stack (`--api <url>` or `LETHE_API_URL`) signed with the
 * standard AWS credential chain. Exit codes: 0 done, 1 the request is not there, not in a state
 * that allows it, or (watch) did not complete, 2 usage, connection or permission problem.
 */

const COMMON = `
  --api <url>        a deployed stack's API (or LETHE_API_URL); AWS credentials from the usual chain
  --state-dir <dir>  local mode's state directory (default .lethe); used when no --api is given
  --json             machine-readable output`;

const USAGES = {
  submit: `usage: lethe submit --type <erasure|anonymize|restrict|opt_out|withdraw> --regulation <gdpr|ccpa|vcdpa|lgpd>
                    (--identity <type>=<value>)… | --stdin  [--source <s> --source-event-id <id>] [--watch]

  Submits a privacy request and prints its id and deadline. --stdin reads the whole JSON body
  instead (keeps identities out of your shell history). --watch follows it until final.`,
  status: `usage: lethe status <request id>

  Where one request stands: its deadline, whether it is overdue, and per system the action,
  status, records affected, attempts and last error (class and scrubbed message).`,
  list: `usage: lethe list [--status <s>] [--type <t>] [--regulation <r>] [--overdue | --on-time]
                  [--since <date>] [--until <date>] [--limit <n>] [--all]

  Requests, newest first (with --overdue, most overdue first), a page of --limit (default 50);
  --all follows every page.`,
  watch: `usage: lethe watch <request id> [--interval <seconds>] [--timeout <seconds>]

  Follows a request system by system until it is final, redrawing a progress display on a
  terminal and printing each change otherwise. Exit 0 completed, 1 ended otherwise or timed out.`,
  extend: `usage: lethe extend <request id> --reason <text>

  Extends the deadline once, within the law's allowance (operators only).`,
  cancel: `usage: lethe cancel <request id> --reason <text>

  Cancels a request not yet final; what systems already did stays done (operators only).`,
  retry: `usage: lethe retry <request id>

  Runs the failed tasks of a failed or partially failed request again (operators only).`,
  lookup: `usage: lethe lookup (--identity <type>=<value>)… | --stdin

  Every request of the subject these identities name (pseudonymized by Lethe, never kept).`,
  report: `usage: lethe report [--since <date>] [--until <date>] [--export csv|json] [--out <file>]

  The summary of requests received in a period (default: the last 30 days): counts by status,
  regulation and type, overdue, median and p95 hours to completion. --export writes every
  request of the period instead.`,
} as const;
export type RequestCommand = keyof typeof USAGES;
export const REQUEST_COMMANDS = Object.keys(USAGES) as RequestCommand[];

/** The role each command needs (in local mode; in AWS the caller's own credentials decide). */
const ROLE: Record<RequestCommand, LocalRole> = {
  submit: 'SubmitterRole',
  status: 'ComplianceRole',
  list: 'ComplianceRole',
  watch: 'ComplianceRole',
  lookup: 'ComplianceRole',
  report: 'ComplianceRole',
  extend: 'OperatorRole',
  cancel: 'OperatorRole',
  retry: 'OperatorRole',
};



/** A failure the command reports and exits on. */
class Exit extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

const options = {
  api: { type: 'string' },
  'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  type: { type: 'string' },
  regulation: { type: 'string' },
  identity: { type: 'string', multiple: true },
  stdin: { type: 'boolean', default: false },
  source: { type: 'string' },
  'source-event-id': { type: 'string' },
  status: { type: 'string' },
  overdue: { type: 'boolean', default: false },
  'on-time': { type: 'boolean', default: false },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
  all: { type: 'boolean', default: false },
  watch: { type: 'boolean', default: false },
  interval: { type: 'string' },
  timeout: { type: 'string' },
  reason: { type: 'string' },
  export: { type: 'string' },
  out: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];
type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values'];

/** `lethe <command> …` for the request commands. */
export async function requestCommand(command: RequestCommand, argv: string[]): Promise<number> {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true });
  } catch (error) {
    console.error(`lethe ${command}: ${(error as Error).message}\n\n${USAGES[command]}${COMMON}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) return (console.log(`${USAGES[command]}${COMMON}`), 0);
  try {
    const api = LetheApi.connect({ apiUrl: values.api, stateDir: values['state-dir'], role: ROLE[command] });
    return await RUN[command](api, values, positionals);
  } catch (error) {
    if (error instanceof Exit) {
      console.error(error.message.startsWith('usage') ? error.message : `lethe ${command}: ${error.message}`);
      return error.code;
    }
    if (error instanceof ApiSetupError) {
      console.error(`lethe ${command}: ${error.message}`);
      return 2;
    }
    if (error instanceof TypeError && /fetch failed/.test(error.message)) {
      console.error(`lethe ${command}: cannot reach the API (${String((error.cause as Error | undefined)?.message ?? error.message)}): is local mode running?`);
      return 2;
    }
    throw error;
  }
}

const usage = (command: RequestCommand) => new Exit(2, `${USAGES[command]}${COMMON}`);

/** The answer's body, or an Exit saying what the API said (404 and 409: 1; anything else: 2). */
function expect2xx(answer: ApiAnswer): Record<string, unknown> {
  if (answer.status >= 200 && answer.status < 300) return answer.json();
  let body: Record<string, unknown> = {};
  try {
    body = answer.json();
  } catch {
    // not JSON: the status says enough
  }
  const issues = (body['issues'] as { path: string; message: string }[] | undefined)?.map((i) => `${i.path ? `${i.path} ` : ''}${i.message}`).join('; ');
  const message = issues ?? (typeof body['message'] === 'string' ? body['message'] : `HTTP ${String(answer.status)}`);
  if (answer.status === 403) throw new Exit(2, `not allowed: ${message}`);
  throw new Exit(answer.status === 404 || answer.status === 409 ? 1 : 2, message);
}

function identitiesOf(values: Values, command: RequestCommand): { type: string; value: string }[] {
  return (values.identity ?? []).map((pair) => {
    const at = pair.indexOf('=');
    if (at < 1) throw new Exit(2, `--identity must be <type>=<value>, as email=ada@example.com\n\n${USAGES[command]}`);
    return { type: pair.slice(0, at), value: pair.slice(at + 1) };
  });
}

function readStdinJson(): unknown {
  try {
    return JSON.parse(readFileSync(0, 'utf8'));
  } catch (error) {
    throw new Exit(2, `stdin is not JSON (${(error as Error).message})`);
  }
}

const plural = (n: number, word: string) => `${String(n)} ${word}${n === 1 ? '' : 's'}`;
const print = (values: Values, json: unknown, text: () => void) => (values.json ? console.log(JSON.stringify(json, null, 2)) : text());

function oneId(command: RequestCommand, positionals: string[]): string {
  if (positionals.length !== 1) throw usage(command);
  return encodeURIComponent(positionals[0]!);
}

const RUN: Record<RequestCommand, (api: LetheApi, values: Values, positionals: string[]) => Promise<number>> = {
  async submit(api, values, positionals) {
    if (positionals.length > 0) throw usage('submit');
    const body = values.stdin
      ? readStdinJson()
      : {
          type: values.type,
          regulation: values.regulation,
          identities: identitiesOf(values, 'submit'),
          ...(values.source && { source: values.source }),
          ...(values['source-event-id'] && { sourceEventId: values['source-event-id'] }),
        };
    const answer = expect2xx(await api.post('/v1/requests', body)) as { requestId: string; status: string; dueAt: string };
    if (!values.watch) {
      print(values, answer, () => console.log(`${answer.requestId}  ${answer.status}, due ${answer.dueAt}`));
      return 0;
    }
    if (!values.json) console.log(`${answer.requestId}  ${answer.status}, due ${answer.dueAt}`);
    return RUN.watch(LetheApi.connect({ apiUrl: values.api, stateDir: values['state-dir'], role: 'ComplianceRole' }), values, [answer.requestId]);
  },

  async status(api, values, positionals) {
    const r = expect2xx(await api.get(`/v1/requests/${oneId('status', positionals)}`)) as unknown as RequestDetail;
    print(values, r, () => {
      console.log(`${r.requestId}  ${r.type} under ${r.regulation}: ${r.status}${r.completedAt ? ` at ${r.completedAt}` : ''}`);
      console.log(`  received ${r.receivedAt}, due ${r.dueAt}${r.overdue ? '  OVERDUE' : ''}`);
      if (r.nothingFound) console.log('  nothing found in any system: nothing was deleted because nothing was there');
      for (const s of r.systems) {
        const affected = s.affected === null ? '' : `, ${plural(s.affected, 'record')}`;
        console.log(`  ${s.system.padEnd(20)} ${s.action.padEnd(9)} ${s.status}${affected}, ${plural(s.attempts, 'attempt')}${s.error ? ` (${s.error.name}: ${s.error.message})` : ''}`);
      }
    });
    return 0;
  },

  async list(api, values, positionals) {
    if (positionals.length > 0 || (values.overdue && values['on-time'])) throw usage('list');
    const query = new URLSearchParams();
    for (const name of ['status', 'type', 'regulation', 'since', 'until', 'limit'] as const) if (values[name] !== undefined) query.set(name, values[name]);
    if (values.overdue || values['on-time']) query.set('overdue', String(values.overdue));
    const requests: ListedRequest[] = [];
    for (let cursor: string | undefined, first = true; first || (values.all && cursor); first = false) {
      if (cursor) query.set('cursor', cursor);
      const answer = await api.get('/v1/requests', query);
      if (answer.status === 400) {
        const issues = answer.json<{ issues?: { path: string; message: string }[] }>().issues ?? [];
        throw new Exit(2, issues.map((i) => `--${i.path} ${i.message}`).join('; '));
      }
      const page = expect2xx(answer) as { requests: ListedRequest[]; cursor?: string };
      requests.push(...page.requests);
      cursor = page.cursor;
      if (!values.all && cursor && !values.json) console.error('(more: --all follows every page)');
    }
    print(values, requests, () => {
      for (const r of requests) {
        console.log(`${r.requestId}  ${r.type.padEnd(9)} ${r.regulation.padEnd(5)} ${r.status.padEnd(16)} received ${r.receivedAt.slice(0, 16)}  due ${r.dueAt.slice(0, 16)}${r.overdue ? '  OVERDUE' : ''}`);
      }
      console.log(plural(requests.length, 'request'));
    });
    return 0;
  },

  async watch(api, values, positionals) {
    const id = oneId('watch', positionals);
    const interval = Math.max(0.2, Number(values.interval ?? 1)) * 1000;
    const deadline = Date.now() + Number(values.timeout ?? 3600) * 1000;
    const tty = process.stdout.isTTY && !values.json;
    let drawn = 0;
    let last = '';
    for (;;) {
      const r = expect2xx(await api.get(`/v1/requests/${id}`)) as unknown as RequestDetail;
      const final = FINAL_REQUEST_STATUSES.includes(r.status);
      if (values.json) {
        if (final) console.log(JSON.stringify(r, null, 2));
      } else if (tty) {
        const lines = progress(r);
        if (drawn > 0) process.stdout.write(`\x1b[${String(drawn)}A\x1b[J`);
        process.stdout.write(`${lines.join('\n')}\n`);
        drawn = lines.length;
      } else {
        for (const line of changes(r, last)) console.log(line);
        last = snapshot(r);
      }
      if (final) return r.status === 'completed' ? 0 : 1;
      if (Date.now() > deadline) throw new Exit(1, `request ${r.requestId} is still ${r.status} after ${values.timeout ?? '3600'} s`);
      await sleep(interval);
    }
  },

  async extend(api, values, positionals) {
    const id = oneId('extend', positionals);
    if (!values.reason) throw new Exit(2, `--reason is required: the law asks why\n\n${USAGES.extend}`);
    const r = expect2xx(await api.post(`/v1/requests/${id}:extend`, { reason: values.reason })) as { requestId: string; dueAt: string; law: string };
    print(values, r, () => console.log(`${r.requestId}  due ${r.dueAt} (${r.law})`));
    return 0;
  },

  async cancel(api, values, positionals) {
    const id = oneId('cancel', positionals);
    if (!values.reason) throw new Exit(2, `--reason is required\n\n${USAGES.cancel}`);
    type Task = { system: string; action: string };
    const r = expect2xx(await api.post(`/v1/requests/${id}:cancel`, { reason: values.reason })) as { requestId: string; cancelledTasks: Task[]; alreadyDone: Task[] };
    const names = (tasks: Task[]) => tasks.map((t) => `${t.system} ${t.action}`).join(', ');
    print(values, r, () => {
      console.log(`${r.requestId}  cancelled`);
      if (r.cancelledTasks.length) console.log(`  not started, now cancelled: ${names(r.cancelledTasks)}`);
      if (r.alreadyDone.length) console.log(`  already done (not undone): ${names(r.alreadyDone)}`);
    });
    return 0;
  },

  async retry(api, values, positionals) {
    const id = oneId('retry', positionals);
    const r = expect2xx(await api.post(`/v1/requests/${id}:retry`, {})) as { requestId: string; round: number; retried: { system: string; action: string }[] };
    print(values, r, () => console.log(`${r.requestId}  retrying ${r.retried.map((t) => `${t.system} ${t.action}`).join(', ') || 'the whole plan'} (round ${String(r.round)})`));
    return 0;
  },

  async lookup(api, values, positionals) {
    if (positionals.length > 0) throw usage('lookup');
    const body = values.stdin ? readStdinJson() : { identities: identitiesOf(values, 'lookup') };
    const { requests } = expect2xx(await api.post('/v1/subjects:lookup', body)) as { requests: ListedRequest[] };
    print(values, requests, () => {
      for (const r of requests) console.log(`${r.requestId}  ${r.type.padEnd(9)} ${r.regulation.padEnd(5)} ${r.status.padEnd(16)} received ${r.receivedAt.slice(0, 16)}${r.overdue ? '  OVERDUE' : ''}`);
      console.log(plural(requests.length, 'request'));
    });
    return 0;
  },

  async report(api, values, positionals) {
    if (positionals.length > 0 || (values.export && !['csv', 'json'].includes(values.export))) throw usage('report');
    const query = new URLSearchParams();
    for (const name of ['since', 'until'] as const) if (values[name] !== undefined) query.set(name, values[name]);
    if (values.export) {
      query.set('format', values.export);
      const answer = await api.get('/v1/reports/export', query);
      if (answer.status !== 200) expect2xx(answer); // throws, saying what the API said
      if (values.out) writeFileSync(values.out, answer.text);
      else process.stdout.write(answer.text);
      return 0;
    }
    const s = expect2xx(await api.get('/v1/reports/summary', query)) as unknown as Summary;
    const out = () => {
      const nonzero = (counts: Record<string, number>) => Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${String(n)}`).join(', ') || 'none';
      console.log(`requests received ${s.since.slice(0, 16)} to ${s.until.slice(0, 16)}: ${String(s.total)}`);
      console.log(`  by status:     ${nonzero(s.byStatus)}`);
      console.log(`  by regulation: ${nonzero(s.byRegulation)}`);
      console.log(`  by type:       ${nonzero(s.byType)}`);
      console.log(`  overdue now ${String(s.overdue)}, finished late ${String(s.finishedLate)}, extended ${String(s.extended)}`);
      console.log(`  completed with nothing found anywhere: ${String(s.nothingFound)}`);
      const c = s.completionSeconds;
      console.log(`  time to completion: ${c.count ? `median ${humanDuration(c.median!)}, p95 ${humanDuration(c.p95!)} over ${plural(c.count, 'request')}` : 'none finished'}`);
    };
    if (values.out) writeFileSync(values.out, `${JSON.stringify(s, null, 2)}\n`);
    else print(values, s, out);
    return 0;
  },
};


const MARK: Record<string, string> = { pending: '·', dispatched: '·', running: '▶', waiting_on_vendor: '⧗', succeeded: '✔', failed: '✘', needs_review: '⚠', cancelled: '⊘' };
const DONE = ['succeeded', 'failed', 'needs_review', 'cancelled'];

/** The progress display: a bar of finished tasks, then one line per system. */
function progress(r: RequestDetail): string[] {
  const done = r.systems.filter((s) => DONE.includes(s.status)).length;
  const total = Math.max(1, r.systems.length);
  const width = 30;
  const filled = Math.round((done / total) * width);
  return [
    `${r.requestId}  ${r.type} under ${r.regulation}: ${r.status}${r.overdue ? '  OVERDUE' : ''}`,
    `  [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(done)}/${String(r.systems.length)} tasks, due ${r.dueAt.slice(0, 16)}`,
    ...r.systems.map((s) => `  ${MARK[s.status] ?? '?'} ${s.system.padEnd(20)} ${s.action.padEnd(9)} ${s.status}${s.affected === null ? '' : `, ${plural(s.affected, 'record')}`}${s.error ? ` (${s.error.name})` : ''}`),
  ];
}

const snapshot = (r: RequestDetail) => JSON.stringify([r.status, r.systems.map((s) => [s.system, s.action, s.status])]);

/** Lines for what changed since the last snapshot (all of it the first time). */
function changes(r: RequestDetail, last: string): string[] {
  if (snapshot(r) === last) return [];
  const before: [string, [string, string, string][]] = last ? (JSON.parse(last) as [string, [string, string, string][]]) : ['', []];
  const lines: string[] = [];
  const was = new Map(before[1].map(([system, action, status]) => [`${system} ${action}`, status]));
  for (const s of r.systems) if (was.get(`${s.system} ${s.action}`) !== s.status) lines.push(`${new Date().toISOString().slice(11, 19)}  ${s.system} ${s.action}: ${s.status}${s.affected === null ? '' : `, ${plural(s.affected, 'record')}`}${s.error ? ` (${s.error.name})` : ''}`);
  if (before[0] !== r.status) lines.push(`${new Date().toISOString().slice(11, 19)}  request ${r.requestId}: ${r.status}`);
  return lines;
}
