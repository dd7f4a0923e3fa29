import { readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { verifyReceipt } from '../core/receipt.ts';
import { ApiSetupError, LetheApi } from './api.ts';

const USAGE = `usage: lethe receipt verify <receipt.json> --public-key <key.pem> [--json]
       lethe receipt get <request id> [--out <file>] [--api <url> | --state-dir <dir>]
       lethe receipt public-key [--out <file>] [--api <url> | --state-dir <dir>]

  verify      checks a receipt offline: its form, its ECDSA P-256 signature under the public key, the
              signature of the audit log's tree head it carries, and the proof that the request's
              last audit record is a leaf of that tree. Needs neither Lethe nor AWS.
              Exit 0 valid, 1 not valid, 2 usage error.
  get         a final request's signed receipt, waiting while the audit log has yet to take the
              request's last record (503): from local mode (<state-dir>, default .lethe), or from a
              deployed stack's --api URL (or LETHE_API_URL) with your AWS credentials (SigV4).
  public-key  the key that verifies receipts (PEM), from the same API; or aws kms get-public-key
              on the stack's ReceiptKey.`;

/** `lethe receipt …`. */
export async function receiptCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'public-key': { type: 'string' },
      out: { type: 'string' },
      api: { type: 'string' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [verb, arg] = positionals;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (verb === 'verify' && arg && values['public-key'] && positionals.length === 2) {
    let receipt: unknown;
    try {
      receipt = JSON.parse(readFileSync(arg, 'utf8')) as unknown;
    } catch (error) {
      console.error(`lethe receipt verify: cannot read ${arg} as JSON (${(error as Error).name})`);
      return 2;
    }
    const check = verifyReceipt(receipt, readFileSync(values['public-key'], 'utf8'));
    if (values.json) console.log(JSON.stringify(check.ok ? { ok: true, requestId: check.receipt.requestId, status: check.receipt.status } : check));
    else if (check.ok) {
      const r = check.receipt;
      console.log(`receipt of ${r.requestId}: VALID, signed by ${r.keyId} at ${r.issuedAt}`);
      console.log(`  ${r.type} under ${r.regulation}: ${r.status}${r.completedAt ? ` at ${r.completedAt}` : ''}; audit chain of ${String(r.audit.seq)} records, head ${r.audit.head.slice(0, 16)}…`);
      console.log(`  audit log: the head is leaf ${String(r.log.leafIndex)} of the tree of ${String(r.log.treeHead.treeSize)} leaves signed at ${r.log.treeHead.timestamp} (root ${r.log.treeHead.rootHash.slice(0, 16)}…)`);
      for (const s of r.systems) console.log(`  ${s.system.padEnd(20)} ${s.action.padEnd(9)} ${s.status}${s.affected === null ? '' : `, ${String(s.affected)} records`}${s.errorName ? ` (${s.errorName})` : ''}`);
    } else console.error(`receipt NOT VALID: ${check.problem}`);
    return check.ok ? 0 : 1;
  }
  if ((verb === 'get' && arg && positionals.length === 2) || (verb === 'public-key' && positionals.length === 1)) {
    let api: LetheApi;
    try {
      api = LetheApi.connect({ apiUrl: values.api, stateDir: values['state-dir'], role: 'ComplianceRole' });
    } catch (error) {
      if (!(error instanceof ApiSetupError)) throw error;
      console.error(`lethe receipt ${verb}: ${error.message}`);
      return 2;
    }
    const path = verb === 'get' ? `/v1/requests/${encodeURIComponent(arg!)}/receipt` : '/v1/receipts/public-key';
    let response = await api.fetch(path);
    // 503: the audit log has yet to sign a tree head holding the request's last record; it says when to ask again.
    for (let waited = 0; response.status === 503 && waited < 180; ) {
      const after = Math.min(Math.max(Number(response.headers.get('retry-after')) || 5, 1), 60);
      if (waited === 0) console.error(`lethe receipt get: waiting for the audit log to sign the request's last record (up to 3 minutes)…`);
      await sleep(after * 1000);
      waited += after;
      response = await api.fetch(path);
    }
    const text = await response.text();
    if (!response.ok) {
      console.error(`lethe receipt ${verb}: HTTP ${String(response.status)} ${text}`);
      return response.status === 404 || response.status === 409 ? 1 : 2;
    }
    const out = verb === 'get' ? `${JSON.stringify(JSON.parse(text), null, 2)}\n` : text;
    if (values.out) writeFileSync(values.out, out);
    else process.stdout.write(out);
    return 0;
  }
  console.error(USAGE);
  return 2;
}
