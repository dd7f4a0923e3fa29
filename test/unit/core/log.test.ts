import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hexOf, recordLeafHash, verifyHeadsConsistent, type TreeHead, type TreeHeadBody } from '#core/log';
import { consistencyProof, rootOf } from '#core/merkle';
import { canonicalBytes } from '#core/signing';

/** Two signed tree heads of one log, and the check an auditor holding only them and a proof makes. */
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const leaves = Array.from({ length: 23 }, (_, i) => recordLeafHash(i.toString(16).padStart(2, '0').repeat(32)));
const head = (size: number, key = privateKey, of = leaves): TreeHead => {
  const body: TreeHeadBody = { v: 1, treeSize: size, rootHash: hexOf(rootOf(of.slice(0, size))), timestamp: `2026-11-29T10:00:${String(size).padStart(2, '0')}.000Z`, keyId: 'local', alg: 'ECDSA_P256_SHA256' };
  return { ...body, signature: sign('sha256', canonicalBytes(body), { key, dsaEncoding: 'der' }).toString('base64') };
};
const proof = (m: number, n: number, of = leaves) => consistencyProof(m, of.slice(0, n)).map(hexOf);

describe('Function: verifyHeadsConsistent', () => {
  it('accepts every older head against every newer one with its proof, as heads or inside receipts', () => {
    for (let n = 1; n <= leaves.length; n += 1) {
      for (let m = 0; m <= n; m += 1) expect(verifyHeadsConsistent(head(m), head(n), proof(m, n), publicKey).ok, `${String(m)} → ${String(n)}`).toBe(true);
    }
    expect(verifyHeadsConsistent({ log: { treeHead: head(5) } }, { log: { treeHead: head(9) } }, proof(5, 9), publicKey)).toMatchObject({ ok: true, older: { treeSize: 5 }, newer: { treeSize: 9 } });
  });

  it('refuses a rewritten log, another proof, heads in the wrong order, another key, and what is not a head', () => {
    const rewritten = [...leaves.slice(0, 3), recordLeafHash('ee'.repeat(32)), ...leaves.slice(4)];
    expect(verifyHeadsConsistent(head(7), head(20, privateKey, rewritten), proof(7, 20, rewritten), publicKey)).toMatchObject({ ok: false, problem: expect.stringMatching(/^the proof does not show the tree of 20 leaves extending the tree of 7/) as string });
    expect(verifyHeadsConsistent(head(7), head(20), proof(6, 20), publicKey).ok).toBe(false);
    expect(verifyHeadsConsistent(head(20), head(7), proof(7, 20), publicKey)).toMatchObject({ ok: false, problem: expect.stringMatching(/give the older first$/) as string });
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    expect(verifyHeadsConsistent(head(7), head(20, other), proof(7, 20), publicKey)).toEqual({ ok: false, problem: 'the second tree head is not signed by this key' });
    expect(verifyHeadsConsistent({ treeSize: 7 }, head(20), proof(7, 20), publicKey)).toMatchObject({ ok: false, problem: expect.stringMatching(/^the first is not a tree head or a receipt/) as string });
    expect(verifyHeadsConsistent(head(7), head(20), ['zz'], publicKey)).toEqual({ ok: false, problem: 'the proof is not a list of 64-digit hex hashes' });
  });
});
