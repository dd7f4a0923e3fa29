import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { treeHeadOf, verifyHeadsConsistent } from '../core/log.ts';
import { p256PublicKey } from '../core/signing.ts';
import { ApiSetupError, LetheApi } from './api.ts';

const USAGE = `usage: lethe audit consistency <older.json> <newer.json> --public-key <key.pem>
                               [--proof <proof.json>] [--api <url> | --state-dir <dir>] [--json]

  Checks that the audit log only grew between two signed tree heads: that the newer extends the
  older, with nothing the older covered changed. Each file is a tree head or a receipt (its tree
  head is taken). The proof is an RFC 9162 consistency proof: from --proof (the answer of
  GET /v1/log/consistency?from=<older size>&to=<newer size>, or its "proof" list), or asked of
  the API (local mode, or a deployed stack's --api URL with your AWS credentials). With --proof the check is offline. Exit 0 consistent, 1 not, 2 usage error.`;

/** `lethe audit consistency`. */
export async function auditConsistency(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'public-key': { type: 'string' },
      proof: { type: 'string' },
      api: { type: 'string' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [olderFile, newerFile] = positionals;
  if (positionals.length !== 2 || !olderFile || !newerFile || !values['public-key']) {
    console.error(USAGE);
    return 2;
  }
  let older: unknown;
  let newer: unknown;
  let pem: string;
  let proofFile: unknown;
  try {
    [older, newer] = [olderFile, newerFile].map((f) => JSON.parse(readFileSync(f, 'utf8')) as unknown);
    pem = readFileSync(values['public-key'], 'utf8');
    proofFile = values.proof === undefined ? undefined : (JSON.parse(readFileSync(values.proof, 'utf8')) as unknown);
  } catch (error) {
    console.error(`lethe audit consistency: ${(error as Error).message}`);
    return 2;
  }
  const key = p256PublicKey(pem);
  if (typeof key === 'string') {
    console.error(`lethe audit consistency: ${key}`);
    return 2;
  }
  let proof = Array.isArray(proofFile) ? proofFile : (proofFile as { proof?: unknown } | undefined)?.proof;
  if (proofFile === undefined) {
    const sizes = [older, newer].map((h) => (treeHeadOf(h) as { treeSize?: unknown } | null)?.treeSize);
    if (!sizes.every((s) => typeof s === 'number')) {
      console.error('lethe audit consistency: a file is not a tree head or a receipt');
      return 2;
    }
    let api: LetheApi;
    try {
      api = LetheApi.connect({ apiUrl: values.api, stateDir: values['state-dir'], role: 'ComplianceRole' });
    } catch (error) {
      if (!(error instanceof ApiSetupError)) throw error;
      console.error(`lethe audit consistency: give --proof, or ${error.message}`);
      return 2;
    }
    if ((sizes[0] as number) > (sizes[1] as number)) proof = []; // out of order: the check below says so
    else {
      const response = await api.fetch(`/v1/log/consistency?from=${String(sizes[0])}&to=${String(sizes[1])}`);
      if (!response.ok) {
        console.error(`lethe audit consistency: HTTP ${String(response.status)} ${await response.text()}`);
        return response.status === 404 ? 1 : 2;
      }
      proof = ((await response.json()) as { proof: unknown }).proof;
    }
  }
  if (!Array.isArray(proof) || !proof.every((h) => typeof h === 'string')) {
    console.error('lethe audit consistency: the proof is not a list of hashes');
    return 2;
  }
  const check = verifyHeadsConsistent(older, newer, proof, key);
  if (values.json) console.log(JSON.stringify(check.ok ? { ok: true, from: check.older.treeSize, to: check.newer.treeSize } : check));
  else if (check.ok) console.log(`CONSISTENT: the tree of ${String(check.newer.treeSize)} leaves (${check.newer.timestamp}) extends the tree of ${String(check.older.treeSize)} (${check.older.timestamp})`);
  else console.error(`NOT CONSISTENT: ${check.problem}`);
  return check.ok ? 0 : 1;
}
