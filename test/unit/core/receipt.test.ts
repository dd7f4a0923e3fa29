import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { receiptMessage, verifyReceipt, type Receipt, type ReceiptBody } from '#core/receipt';
import { LocalReceiptSigner } from '#functions/commons/receipts';

/** Receipts signed as Lethe signs them (the local signer; KMS signs the same bytes the same way), checked offline. */
const body: ReceiptBody = {
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
  audit: { seq: 11, head: 'ab'.repeat(32) },
  issuedAt: '2026-11-29T11:00:00.000Z',
  keyId: 'local',
  alg: 'ECDSA_P256_SHA256',
};

async function signed(): Promise<{ receipt: Receipt; publicKey: string }> {
  const file = join(mkdtempSync(join(tmpdir(), 'lethe-receipt-')), 'key.pem');
  LocalReceiptSigner.ensureKeyFile(file);
  const signer = LocalReceiptSigner.fromFile(file);
  const signature = Buffer.from(await signer.sign(receiptMessage(body))).toString('base64');
  return { receipt: { ...body, signature }, publicKey: await signer.publicKeyPem() };
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

  it('says what is wrong with what is not a receipt, or not a P-256 key', async () => {
    const { receipt, publicKey } = await signed();
    expect(verifyReceipt({ ...receipt, extra: 1 }, publicKey)).toMatchObject({ ok: false, problem: expect.stringMatching(/^not a receipt: /) as string });
    expect(verifyReceipt(receipt, 'not a key')).toEqual({ ok: false, problem: 'the public key is not a PEM public key' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }).toString();
    expect(verifyReceipt(receipt, rsa)).toEqual({ ok: false, problem: 'the public key is not an ECDSA P-256 key' });
  });
});
