import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hexOf, recordLeafHash, type TreeHead, type TreeHeadBody } from '#core/log';
import { inclusionProof, rootOf } from '#core/merkle';
import { receiptMessage, verifyReceipt, type Receipt, type ReceiptBody } from '#core/receipt';
import { canonicalBytes } from '#core/signing';
import { LocalReceiptSigner } from '#functions/commons/receipts';

/**
 * Receipts signed as Lethe signs them (the local signer; KMS signs the same bytes the same way),
 * over a log of seven records whose fourth is the request's chain head, checked offline.
 */
const head = 'ab'.repeat(32);
const records = ['01', '02', '03', 'ab', '05', '06', '07'].map((b) => b.repeat(32));
const leaves = records.map(recordLeafHash);
const treeHeadBody: TreeHeadBody = { v: 1, treeSize: 7, rootHash: hexOf(rootOf(leaves)), timestamp: '2026-11-29T10:01:00.000Z', keyId: 'local', alg: 'ECDSA_P256_SHA256' };
const body: Omit<ReceiptBody, 'log'> = {
  v: 1,
  requestId: '3a3b3c3d-0000-4000-8000-000000000001',
  type: 'erasure',
  regulation: 'gdpr',
  status: 'completed',
  receivedAt: '2026-11-29T10:00:00.000Z',
  dueAt: '2026-12-29T10:00:00.000Z',
  completedAt: '2026-11-29T10:00:09.000Z',
  systems: [
    { system: 'app-db', action: 'delete', status: 'succeeded', affected: 3, updatedAt: '2026-11-29T10:00:08.000Z' },
    { system: 'crm', action: 'delete', status: 'succeeded', affected: 1, updatedAt: '2026-11-29T10:00:05.000Z' },
  ],
  audit: { seq: 11, head },
  issuedAt: '2026-11-29T11:00:00.000Z',
  keyId: 'local',
  alg: 'ECDSA_P256_SHA256',
};

const file = join(mkdtempSync(join(tmpdir(), 'lethe-receipt-')), 'key.pem');
LocalReceiptSigner.ensureKeyFile(file);
const signer = LocalReceiptSigner.fromFile(file);
const sign = async (message: Uint8Array) => Buffer.from(await signer.sign(message)).toString('base64');

/** A receipt as Lethe issues it; `log` replaces its log proof before it is signed. */
async function signed(log?: Partial<ReceiptBody['log']>): Promise<{ receipt: Receipt; publicKey: string }> {
  const treeHead: TreeHead = { ...treeHeadBody, signature: await sign(canonicalBytes(treeHeadBody)) };
  const full: ReceiptBody = { ...body, log: { leafIndex: 3, treeHead, inclusionProof: inclusionProof(3, leaves).map(hexOf), ...log } };
  return { receipt: { ...full, signature: await sign(receiptMessage(full)) }, publicKey: await signer.publicKeyPem() };
}

describe('Function: verifyReceipt', () => {
  it('accepts a receipt as signed, under its public key', async () => {
    const { receipt, publicKey } = await signed();
    expect(verifyReceipt(JSON.parse(JSON.stringify(receipt)), publicKey)).toEqual({ ok: true, receipt });
  });

  it('refuses a receipt with any field changed, a changed signature, or another key', async () => {
    const { receipt, publicKey } = await signed();
    const changed = (r: Receipt) => verifyReceipt(r, publicKey);
    expect(changed({ ...receipt, status: 'partially_failed' })).toMatchObject({ ok: false, problem: expect.stringMatching(/signature does not match/) as string });
    expect(changed({ ...receipt, systems: [{ ...receipt.systems[0]!, affected: 2 }, receipt.systems[1]!] }).ok).toBe(false);
    expect(changed({ ...receipt, audit: { ...receipt.audit, seq: 10 } }).ok).toBe(false);
    const sig = Buffer.from(receipt.signature, 'base64');
    sig[sig.length - 1]! ^= 1;
    expect(changed({ ...receipt, signature: sig.toString('base64') }).ok).toBe(false);
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'pem', type: 'spki' }).toString();
    expect(verifyReceipt(receipt, other)).toMatchObject({ ok: false });
  });

  it('refuses a receipt, however signed, whose proof is for another leaf or another tree, or whose tree head another key signed', async () => {
    const check = async (log: Partial<ReceiptBody['log']>) => {
      const { receipt, publicKey } = await signed(log);
      return verifyReceipt(receipt, publicKey);
    };
    const bigger = [...leaves, recordLeafHash('08'.repeat(32))];
    const biggerHead: TreeHeadBody = { ...treeHeadBody, treeSize: 8, rootHash: hexOf(rootOf(bigger)) };
    const biggerSigned = { ...biggerHead, signature: await sign(canonicalBytes(biggerHead)) };
    const notIncluded = expect.stringMatching(/^the inclusion proof does not put the audit head at leaf/) as string;
    // The proof of another leaf, a proof for the 7-leaf tree under the 8-leaf head, another place.
    expect(await check({ inclusionProof: inclusionProof(2, leaves).map(hexOf) })).toMatchObject({ ok: false, problem: notIncluded });
    expect(await check({ treeHead: biggerSigned })).toMatchObject({ ok: false, problem: notIncluded });
    expect(await check({ leafIndex: 4 })).toMatchObject({ ok: false, problem: notIncluded });
    // The right proof under the 8-leaf head verifies: the same leaf is in every later tree.
    expect(await check({ treeHead: biggerSigned, inclusionProof: inclusionProof(3, bigger).map(hexOf) })).toMatchObject({ ok: true });
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const foreign = { ...treeHeadBody, signature: Buffer.from(nodeSign('sha256', canonicalBytes(treeHeadBody), { key: other, dsaEncoding: 'der' })).toString('base64') };
    expect(await check({ treeHead: foreign })).toEqual({ ok: false, problem: 'the tree head in the receipt is not signed by this key' });
  });

  it('says what is wrong with what is not a receipt, or not a P-256 key', async () => {
    const { receipt, publicKey } = await signed();
    expect(verifyReceipt({ ...receipt, extra: 1 }, publicKey)).toMatchObject({ ok: false, problem: expect.stringMatching(/^not a receipt: /) as string });
    expect(verifyReceipt(receipt, 'not a key')).toEqual({ ok: false, problem: 'the public key is not a PEM public key' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }).toString();
    expect(verifyReceipt(receipt, rsa)).toEqual({ ok: false, problem: 'the public key is not an ECDSA P-256 key' });
  });
});
