import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { appendLeaves, compactRoot, consistencyRanges, leafHash, memoryNodes, rangeHash, verifyConsistency, type CompactTree, type Hash } from './merkle.ts';
import { SIGNATURE_ALG, verifySigned } from './signing.ts';

/**
 * The audit log across requests: every audit record, once sequenced, is a leaf of one append-only
 * Merkle tree (RFC 6962 / 9162 hashing, `merkle.ts`); the leaf's data is the record's 32-byte hash.
 * Each time the sequencer appends, it publishes the new leaves as one batch and a signed tree head
 * for the new size, both to the audit bucket:
 *
 *   log/leaves/<first leaf, 12 digits>.json   { v, first, leaves: [{ requestId, seq, hash }] }
 *   log/heads/<tree size, 12 digits>.json     { v, treeSize, rootHash, timestamp, keyId, alg, signature }
 *
 * From those objects and the records alone anyone can recompute every root, check every signature,
 * and check that each tree head extends the one before it.
 */
export const LOG_FORMAT_VERSION = 1;

/** The requests table's sparse index of audit records not yet in the log, keyed `unlogged` (a shard) and `unloggedAt`. */
export const UNLOGGED_INDEX = 'Unlogged';
/** Its shards (`U#0` … `U#7`), so that no one index partition takes every record's write. */
export const UNLOGGED_SHARDS = 8;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

export const treeHeadSchema = z.strictObject({
  v: z.literal(LOG_FORMAT_VERSION),
  treeSize: z.int().min(0),
  rootHash: hex64,
  timestamp: z.string(),
  keyId: z.string(),
  alg: z.literal(SIGNATURE_ALG),
  signature: z.string().min(1),
});
export type TreeHead = z.infer<typeof treeHeadSchema>;
export type TreeHeadBody = Omit<TreeHead, 'signature'>;

export const logLeafSchema = z.strictObject({ requestId: z.string(), seq: z.int().min(1), hash: hex64 });
export type LogLeaf = z.infer<typeof logLeafSchema>;
export const leafBatchSchema = z.strictObject({ v: z.literal(LOG_FORMAT_VERSION), first: z.int().min(0), leaves: z.array(logLeafSchema).min(1) });
export type LeafBatch = z.infer<typeof leafBatchSchema>;

const pad = (n: number) => String(n).padStart(12, '0');
export const treeHeadKey = (treeSize: number) => `log/heads/${pad(treeSize)}.json`;
export const leafBatchKey = (first: number) => `log/leaves/${pad(first)}.json`;
export const recordKey = (requestId: string, seq: number) => `audit/${requestId}/${String(seq).padStart(10, '0')}.json`;

export const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
export const bytesOf = (hex: string): Hash => new Uint8Array(Buffer.from(hex, 'hex'));
/** A record's leaf hash in the log: SHA-256(0x00 ‖ the record's hash bytes). */
export const recordLeafHash = (recordHash: string): Hash => leafHash(bytesOf(recordHash));

/** An object as read from the bucket: its key, and its content parsed as JSON (`undefined` when it is not JSON). */
export interface StoredObject {
  readonly key: string;
  readonly body: unknown;
}

/** Where something is wrong (an object key in the audit bucket) and what. */
export interface LogProblem {
  readonly where: string;
  readonly problem: string;
}

export interface LogInput {
  /** Every `log/leaves/` object, in key order. */
  readonly batches: readonly StoredObject[];
  /** Every `log/heads/` object, in key order. */
  readonly heads: readonly StoredObject[];
  /** The hash each audit record in the bucket holds, by its object key. */
  readonly records: ReadonlyMap<string, string>;
  /** Object keys of records Lethe has yet to log (the table's Unlogged index): not in a leaf yet, rightly. */
  readonly pending: ReadonlySet<string>;
  /** The tree head Lethe last published, as the requests table recorded it: a dropped newest head is found against it. */
  readonly latest?: { readonly treeSize: number; readonly rootHash: string } | undefined;
  readonly publicKey: KeyObject;
  /**
   * Tree heads kept outside the bucket (from receipts, or saved by an auditor), by where they came
   * from. The log must extend each: a consistency proof from it to the newest tree head, computed
   * from the logged leaves, must verify. A log rewritten wholesale and re-signed fails here.
   */
  readonly known?: readonly { readonly source: string; readonly head: unknown }[];
}

export interface LogCheck {
  readonly leaves: number;
  readonly heads: number;
  readonly latest?: TreeHead;
  readonly problems: LogProblem[];
}

/**
 * Check the whole log, walking it in order: each batch starts where the one before ended and names
 * records the bucket holds with the hash it holds; a signed tree head ends each batch, its signature
 * verifies, and its root is the root of the leaves so far (so it extends the tree head before it).
 * Tree heads kept elsewhere must be extended by the log (consistency proofs). Then every record is
 * a leaf or waiting to be one. Problems come in log order, so the first is where the log was altered.
 */
export function verifyLog(input: LogInput): LogCheck {
  const problems: LogProblem[] = [];
  const heads = new Map<number, { key: string; head: TreeHead | undefined }>();
  const claimed = new Set<number>();
  for (const { key, body } of input.heads) {
    const parsed = treeHeadSchema.safeParse(body);
    const size = parsed.success ? parsed.data.treeSize : Number(/(\d+)\.json$/.exec(key)?.[1] ?? Number.NaN);
    if (!parsed.success) {
      problems.push({ where: key, problem: body === undefined ? 'is not JSON' : `is not a tree head (${issues(parsed.error)})` });
    } else if (key !== treeHeadKey(parsed.data.treeSize)) {
      problems.push({ where: key, problem: `holds the tree head of size ${String(parsed.data.treeSize)}: a head was moved or replaced` });
    } else if (!verifySigned(withoutSignature(parsed.data), parsed.data.signature, input.publicKey)) {
      problems.push({ where: key, problem: 'its signature does not verify: the tree head was changed, or another key signed it' });
    }
    if (Number.isSafeInteger(size) && !heads.has(size)) heads.set(size, { key, head: parsed.success && key === treeHeadKey(size) ? parsed.data : undefined });
  }
  const bad = new Set(problems.map((p) => p.where));

  let tree: CompactTree = { size: 0, frontier: [] };
  const leafHashes: Hash[] = [];
  const nodes = memoryNodes(leafHashes);
  const seen = new Map<string, number>();
  const logged = new Set<string>();
  let previous: { key: string; head: TreeHead } | undefined;
  let latest: TreeHead | undefined;
  let headsChecked = 0;
  const checkHead = (size: number): undefined => {
    const found = heads.get(size);
    claimed.add(size);
    if (!found) {
      problems.push({ where: treeHeadKey(size), problem: `is missing: the batch of leaves before it ends at leaf ${String(size)}, where a signed tree head must be` });
      return undefined;
    }
    headsChecked += 1;
    const { key, head } = found;
    if (!head || bad.has(key)) {
      previous = undefined;
      return undefined;
    }
    if (head.rootHash !== hexOf(compactRoot(tree))) {
      problems.push({
        where: key,
        problem: `its root is not the root of the first ${String(size)} logged leaves${previous ? `, so it is not consistent with the tree head before it (${previous.key})` : ''}: the tree head was replaced, or leaves before it were changed`,
      });
      previous = undefined;
      return undefined;
    }
    previous = { key, head };
    latest = head;
    return undefined;
  };

  for (const { key, body } of input.batches) {
    const parsed = leafBatchSchema.safeParse(body);
    if (!parsed.success) {
      problems.push({ where: key, problem: body === undefined ? 'is not JSON' : `is not a batch of leaves (${issues(parsed.error)})` });
      previous = undefined;
      continue;
    }
    const batch = parsed.data;
    if (batch.first !== tree.size || key !== leafBatchKey(batch.first)) {
      problems.push({
        where: batch.first > tree.size ? leafBatchKey(tree.size) : key,
        problem: batch.first > tree.size ? `is missing: leaves ${String(tree.size)} to ${String(batch.first - 1)} are in no batch` : `starts at leaf ${String(batch.first)}, but the batches before it end at leaf ${String(tree.size)}`,
      });
      if (batch.first !== tree.size) {
        previous = undefined;
        continue;
      }
    }
    batch.leaves.forEach((leaf, i) => {
      const index = batch.first + i;
      const record = recordKey(leaf.requestId, leaf.seq);
      const stored = input.records.get(record);
      const earlier = seen.get(record);
      if (earlier !== undefined) problems.push({ where: key, problem: `leaf ${String(index)} names ${record} again (leaf ${String(earlier)} did)` });
      else if (stored === undefined) problems.push({ where: key, problem: `leaf ${String(index)} names ${record}, which the bucket does not hold` });
      else if (stored !== leaf.hash) problems.push({ where: key, problem: `leaf ${String(index)} does not hold the hash of ${record} as stored` });
      seen.set(record, index);
      logged.add(record);
    });
    const hashes = batch.leaves.map((l) => recordLeafHash(l.hash));
    leafHashes.push(...hashes);
    tree = appendLeaves(tree, hashes).tree;
    checkHead(tree.size);
  }

  const beyond = [...heads].filter(([size, { key }]) => !claimed.has(size) && !bad.has(key) && size > tree.size);
  if (beyond.length > 0) {
    const [size, { key }] = beyond.at(-1)!;
    problems.push({ where: leafBatchKey(tree.size), problem: `is missing: ${key} signs a tree of ${String(size)} leaves, and the batches hold ${String(tree.size)}` });
  }
  for (const [size, { key }] of heads) {
    if (!claimed.has(size) && !bad.has(key) && size <= tree.size) problems.push({ where: key, problem: 'ends no batch of leaves: the tree head was inserted' });
  }
  if (input.latest && (!latest || latest.treeSize < input.latest.treeSize)) {
    problems.push({ where: treeHeadKey(input.latest.treeSize), problem: `is missing: Lethe published a tree of ${String(input.latest.treeSize)} leaves, and the newest verified tree head has ${String(latest?.treeSize ?? 0)}` });
  } else if (input.latest && latest?.treeSize === input.latest.treeSize && latest.rootHash !== input.latest.rootHash) {
    problems.push({ where: treeHeadKey(latest.treeSize), problem: 'is not the tree head Lethe published at this size' });
  }
  for (const { source, head: body } of input.known ?? []) {
    const parsed = treeHeadSchema.safeParse(body);
    if (!parsed.success) problems.push({ where: source, problem: `is not a tree head (${issues(parsed.error)})` });
    else if (!verifySigned(withoutSignature(parsed.data), parsed.data.signature, input.publicKey)) problems.push({ where: source, problem: 'its tree head is not signed by this key' });
    else if (!latest || parsed.data.treeSize > latest.treeSize) problems.push({ where: source, problem: `its tree of ${String(parsed.data.treeSize)} leaves is beyond the newest verified tree head: leaves were removed from the log` });
    else {
      const proof = consistencyRanges(parsed.data.treeSize, latest.treeSize).map((r) => rangeHash(r, nodes));
      if (!verifyConsistency(parsed.data.treeSize, latest.treeSize, bytesOf(parsed.data.rootHash), bytesOf(latest.rootHash), proof)) {
        problems.push({ where: source, problem: `the log is not consistent with its tree head of ${String(parsed.data.treeSize)} leaves: the log was rewritten since that head was signed` });
      }
    }
  }
  for (const record of [...input.records.keys()].sort()) {
    if (!logged.has(record) && !input.pending.has(record)) {
      problems.push({ where: record, problem: 'is in no leaf of the log, and Lethe holds no such record waiting to be logged: it was inserted' });
    }
  }
  return { leaves: tree.size, heads: headsChecked, ...(latest && { latest }), problems };
}

/** A tree head from a tree head file or from a receipt (its `log.treeHead`). */
export function treeHeadOf(input: unknown): unknown {
  const log = (input as { log?: { treeHead?: unknown } } | null)?.log;
  return log?.treeHead ?? input;
}

export type HeadsCheck = { readonly ok: true; readonly older: TreeHead; readonly newer: TreeHead } | { readonly ok: false; readonly problem: string };

/**
 * Is the newer tree head an append-only extension of the older? Both signed by `key`, and the
 * consistency proof (RFC 9162 §2.1.4, hex hashes) from the older size to the newer verifies.
 * Needs nothing but the two heads, the proof and the key: a log that rewrote anything the older
 * head covered cannot produce such a proof.
 */
export function verifyHeadsConsistent(olderInput: unknown, newerInput: unknown, proof: readonly string[], key: KeyObject): HeadsCheck {
  const heads: TreeHead[] = [];
  for (const [name, input] of [['first', olderInput], ['second', newerInput]] as const) {
    const parsed = treeHeadSchema.safeParse(treeHeadOf(input));
    if (!parsed.success) return { ok: false, problem: `the ${name} is not a tree head or a receipt (${issues(parsed.error)})` };
    if (!verifySigned(withoutSignature(parsed.data), parsed.data.signature, key)) return { ok: false, problem: `the ${name} tree head is not signed by this key` };
    heads.push(parsed.data);
  }
  const [older, newer] = heads as [TreeHead, TreeHead];
  if (older.treeSize > newer.treeSize) return { ok: false, problem: `the first tree head (${String(older.treeSize)} leaves) is larger than the second (${String(newer.treeSize)}): give the older first` };
  if (!proof.every((h) => /^[0-9a-f]{64}$/.test(h))) return { ok: false, problem: 'the proof is not a list of 64-digit hex hashes' };
  const ok = verifyConsistency(older.treeSize, newer.treeSize, bytesOf(older.rootHash), bytesOf(newer.rootHash), proof.map(bytesOf));
  return ok ? { ok: true, older, newer } : { ok: false, problem: `the proof does not show the tree of ${String(newer.treeSize)} leaves extending the tree of ${String(older.treeSize)}: the log was rewritten, or the proof is for other heads` };
}

export function withoutSignature<T extends { signature: string }>(signed: T): Omit<T, 'signature'> {
  const { signature: _, ...body } = signed;
  return body;
}

const issues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
