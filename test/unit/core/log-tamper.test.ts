import fc from 'fast-check';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chainRecord, hashRecord, verifyChain, type AuditRecord } from '#core/audit';
import { hexOf, leafBatchKey, recordKey, recordLeafHash, treeHeadKey, verifyLog, withoutSignature, type LeafBatch, type TreeHead, type TreeHeadBody } from '#core/log';
import { appendLeaves, compactRoot, type CompactTree } from '#core/merkle';
import { canonicalBytes } from '#core/signing';

/**
 * The whole audit store — six requests' chains, the log's batches of leaves and its signed tree
 * heads, with two records still waiting to be logged — altered in 1,000 random ways: a byte of
 * any object edited, a record, a batch or a tree head dropped, two records swapped, a record
 * forged at the end of a chain or for a request that never was, a tree head replaced (signed
 * with the log's own key over another root, signed with another key, or moved from another size),
 * or the whole log rebuilt in another order and re-signed, against a tree head a receipt kept.
 * Verifying as `lethe audit verify --all` does must report every alteration, first where it was made.
 */
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const intruder = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const signHead = (body: TreeHeadBody, key = privateKey): TreeHead => ({ ...body, signature: sign('sha256', canonicalBytes(body), { key, dsaEncoding: 'der' }).toString('base64') });

interface Store {
  readonly objects: Map<string, string>;
  /** The log rebuilt from the same records with two leaves in another order, every head re-signed with the log's key. */
  readonly rewritten: Map<string, string>;
  /** A tree head kept outside the bucket, as a receipt keeps one. */
  readonly known: TreeHead;
  readonly chainHeads: Map<string, { seq: number; hash: string }>;
  readonly pending: Set<string>;
  readonly latest: { treeSize: number; rootHash: string };
}

function buildStore(): Store {
  const objects = new Map<string, string>();
  const chainHeads = new Map<string, { seq: number; hash: string }>();
  const all: AuditRecord[] = [];
  for (let r = 0; r < 6; r += 1) {
    const requestId = `00000000-0000-4000-8000-00000000000${String(r)}`;
    const records: AuditRecord[] = [];
    for (let i = 0; i < 3 + r; i += 1) {
      records.push(
        chainRecord(requestId, records.at(-1), {
          eventId: `e${String(i)}`,
          event: i === 0 ? 'request.received' : 'task.succeeded',
          at: new Date(Date.UTC(2026, 10, 29, 0, i, r)).toISOString(),
          actor: 'lethe:test',
          affected: i,
        }),
      );
    }
    for (const record of records) objects.set(recordKey(requestId, record.seq), JSON.stringify(record));
    chainHeads.set(requestId, { seq: records.length, hash: records.at(-1)!.hash });
    all.push(...records);
  }
  all.sort((a, b) => a.at.localeCompare(b.at));
  const logged = all.slice(0, -2);
  const rewritten = new Map([...objects].filter(([k]) => k.startsWith('audit/')));
  const heads = writeLog(objects, logged);
  writeLog(rewritten, [logged[0]!, logged[2]!, logged[1]!, ...logged.slice(3)]);
  const latest = heads.at(-1)!;
  return { objects, rewritten, known: heads[1]!, chainHeads, pending: new Set(all.slice(-2).map((r) => recordKey(r.requestId, r.seq))), latest: { treeSize: latest.treeSize, rootHash: latest.rootHash } };
}

/** Log these records in batches, each ended by a signed tree head. */
function writeLog(objects: Map<string, string>, logged: readonly AuditRecord[]): TreeHead[] {
  let tree: CompactTree = { size: 0, frontier: [] };
  const heads: TreeHead[] = [];
  for (const size of [1, 4, 2, 7, 3, 9, 5]) {
    const leaves = logged.slice(tree.size, tree.size + size);
    const batch: LeafBatch = { v: 1, first: tree.size, leaves: leaves.map((l) => ({ requestId: l.requestId, seq: l.seq, hash: l.hash })) };
    objects.set(leafBatchKey(tree.size), JSON.stringify(batch));
    tree = appendLeaves(tree, leaves.map((l) => recordLeafHash(l.hash))).tree;
    heads.push(signHead({ v: 1, treeSize: tree.size, rootHash: hexOf(compactRoot(tree)), timestamp: `2026-11-29T01:00:${String(tree.size).padStart(2, '0')}.000Z`, keyId: 'local', alg: 'ECDSA_P256_SHA256' }));
    objects.set(treeHeadKey(tree.size), JSON.stringify(heads.at(-1)));
  }
  expect(tree.size).toBe(logged.length);
  return heads;
}

/** Where `lethe audit verify --all` reports problems, in its order: chains by request, then the log. */
function verifyStore(store: Store, objects: ReadonlyMap<string, string>, latest = store.latest): string[] {
  const parse = (text: string): unknown => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  };
  const keys = [...objects.keys()].sort();
  const chains = new Map<string, AuditRecord[]>();
  const records = new Map<string, string>();
  for (const key of keys.filter((k) => k.startsWith('audit/'))) {
    const requestId = key.split('/')[1]!;
    const body = parse(objects.get(key)!);
    const record = (body && typeof body === 'object' ? body : { requestId, seq: Number.NaN, hash: '', prevHash: '' }) as AuditRecord;
    chains.set(requestId, [...(chains.get(requestId) ?? []), record]);
    records.set(key, record.hash);
  }
  const where: string[] = [];
  for (const requestId of [...new Set([...store.chainHeads.keys(), ...chains.keys()])].sort()) {
    const head = store.chainHeads.get(requestId);
    if (!head) where.push(recordKey(requestId, 1));
    where.push(...verifyChain(requestId, chains.get(requestId) ?? [], head).map((p) => recordKey(requestId, p.at)));
  }
  const stored = (prefix: string) => keys.filter((k) => k.startsWith(prefix)).map((key) => ({ key, body: parse(objects.get(key)!) }));
  const log = verifyLog({ batches: stored('log/leaves/'), heads: stored('log/heads/'), records, pending: store.pending, latest, publicKey, known: [{ source: 'receipt.json', head: store.known }] });
  return [...where, ...log.problems.map((p) => p.where)];
}

const alteration = fc.oneof(
  fc.record({ kind: fc.constant('edit-byte' as const), object: fc.nat(), at: fc.nat(), byte: fc.integer({ min: 0x21, max: 0x7e }) }),
  fc.record({ kind: fc.constant('drop' as const), object: fc.nat(), prefix: fc.constantFrom('audit/', 'log/leaves/', 'log/heads/') }),
  fc.record({ kind: fc.constant('swap' as const), object: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), object: fc.nat(), newRequest: fc.boolean() }),
  fc.record({ kind: fc.constant('replace-head' as const), object: fc.nat(), how: fc.constantFrom('other-root', 'other-key', 'moved') }),
);

describe('Function: verifyLog with verifyChain, under tampering of the whole audit store', () => {
  const store = buildStore();

  it('finds the untouched store intact, with its two waiting records', () => {
    expect(verifyStore(store, store.objects)).toEqual([]);
    // Without the Unlogged index's word for them, the two waiting records are reported.
    expect(verifyStore({ ...store, pending: new Set() }, store.objects)).toEqual([...store.pending].sort());
  });

  it('finds a log rebuilt wholesale and re-signed only against a tree head kept elsewhere, and there', () => {
    const objects = new Map([...store.objects].filter(([key]) => !key.startsWith('log/')));
    for (const [key, text] of store.rewritten) objects.set(key, text);
    const newest = JSON.parse(store.rewritten.get(treeHeadKey(store.latest.treeSize))!) as TreeHead;
    // Consistent within itself, the table told of its newest head: nothing inside the store shows it.
    expect(verifyStore({ ...store, known: newest }, objects, newest)).toEqual([]);
    expect(verifyStore(store, objects, newest)).toEqual(['receipt.json']);
  });

  it('detects 1,000 random alterations, the first problem where each was made', () => {
    fc.assert(
      fc.property(alteration, (change) => {
        const objects = new Map(store.objects);
        const keys = (prefix: string) => [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
        const pick = (prefix: string, n: number) => keys(prefix)[n % keys(prefix).length]!;
        let altered: string[];
        switch (change.kind) {
          case 'edit-byte': {
            const key = [...objects.keys()].sort()[change.object % objects.size]!;
            const text = objects.get(key)!;
            const at = change.at % text.length;
            const byte = String.fromCharCode(change.byte === text.charCodeAt(at) ? (change.byte === 0x7e ? 0x21 : change.byte + 1) : change.byte);
            objects.set(key, text.slice(0, at) + byte + text.slice(at + 1));
            altered = [key];
            break;
          }
          case 'drop': {
            const key = pick(change.prefix, change.object);
            objects.delete(key);
            altered = [key];
            break;
          }
          case 'swap': {
            const a = pick('audit/', change.object);
            let b = pick('audit/', change.other);
            if (a === b) b = pick('audit/', change.other + 1);
            objects.set(a, store.objects.get(b)!);
            objects.set(b, store.objects.get(a)!);
            altered = [a, b];
            break;
          }
          case 'insert': {
            // Well formed and linked: a forger who knows the format appends to a chain, or makes one up.
            const last = JSON.parse(objects.get(pick('audit/', change.object))!) as AuditRecord;
            const requestId = change.newRequest ? 'ffffffff-0000-4000-8000-000000000000' : last.requestId;
            const chain = keys(`audit/${requestId}/`).map((k) => JSON.parse(objects.get(k)!) as AuditRecord);
            const forged = chainRecord(requestId, chain.at(-1), { eventId: 'forged', event: 'request.completed', at: last.at, actor: 'lethe:finalize', status: 'completed' });
            objects.set(recordKey(requestId, forged.seq), JSON.stringify(forged));
            altered = [recordKey(requestId, forged.seq)];
            break;
          }
          case 'replace-head': {
            const key = pick('log/heads/', change.object);
            const head = JSON.parse(objects.get(key)!) as TreeHead;
            const body = withoutSignature(head);
            if (change.how === 'other-root') objects.set(key, JSON.stringify(signHead({ ...body, rootHash: hashRecord({ ...body } as never) })));
            else if (change.how === 'other-key') objects.set(key, JSON.stringify(signHead(body, intruder)));
            else {
              const other = pick('log/heads/', change.object + 1);
              objects.set(key, objects.get(other)!);
            }
            altered = [key];
            break;
          }
        }
        const problems = verifyStore(store, objects);
        expect(problems.length, `${change.kind} went unnoticed`).toBeGreaterThan(0);
        expect(altered, `${change.kind}: first problem at ${String(problems[0])}`).toContain(problems[0]);
      }),
      { numRuns: 1000, seed: 20261129 },
    );
  });
});
