import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPublicKey, verify, webcrypto, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OpenDsrSigner } from '#functions/commons/opendsr';
import { LocalReceiptSigner } from '#functions/commons/receipts';
import { openDsrCommand } from '../../../cli/opendsr.ts';

afterEach(() => vi.restoreAllMocks());

/** A certificate authority of our own, issuing for a request as a real one would. */
async function issue(csrPem: string): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  const ca = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: '0a',
    subject: csr.subject,
    issuer: 'CN=Test CA',
    notBefore: new Date('2026-01-01'),
    notAfter: new Date('2027-01-01'),
    signingKey: ca.privateKey,
    publicKey: await csr.publicKey.export(),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: csr.extensions,
  });
  return certificate.toString('pem');
}

describe('lethe opendsr csr', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'lethe-csr-'));
  const keyFile = join(stateDir, 'opendsr-key.pem');
  LocalReceiptSigner.ensureKeyFile(keyFile);
  const signer = LocalReceiptSigner.fromFile(keyFile);

  it('writes a request for the domain, signed by the OpenDSR key, for that key', async () => {
    const out = join(stateDir, 'opendsr.csr');
    expect(await openDsrCommand(['csr', '--domain', 'opendsr.example.com', '--state-dir', stateDir, '--out', out])).toBe(0);
    const csr = new x509.Pkcs10CertificateRequest(readFileSync(out, 'utf8'));
    expect(csr.subject).toBe('CN=opendsr.example.com');
    expect(await csr.verify()).toBe(true);
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', await csr.publicKey.export()));
    expect(createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'pem', type: 'spki' })).toBe(await signer.publicKeyPem());
    expect(csr.extensions.map((e) => e.type)).toContain('2.5.29.17'); // subjectAltName, asked for
  });

  it('makes a request the signer then serves the issued certificate for, and refuses one for another key', async () => {
    const out: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => out.push(String(chunk)) > 0);
    expect(await openDsrCommand(['csr', '--domain', 'opendsr.example.com', '--state-dir', stateDir])).toBe(0);
    vi.restoreAllMocks();
    const issued = await issue(out.join(''));

    const served = await new OpenDsrSigner(signer, 'opendsr.example.com', issued).certificate();
    expect(new X509Certificate(served).issuer).toBe('CN=Test CA');
    expect(new X509Certificate(served).subjectAltName).toBe('DNS:opendsr.example.com');
    // What it signs verifies under the issued certificate.
    const body = '{"request_status":"completed"}';
    const headers = await new OpenDsrSigner(signer, 'opendsr.example.com', issued).headers(body);
    expect(verify('sha256', Buffer.from(body), new X509Certificate(served).publicKey, Buffer.from(headers['X-OpenDSR-Signature']!, 'base64'))).toBe(true);

    const otherKey = join(stateDir, 'other.pem');
    LocalReceiptSigner.ensureKeyFile(otherKey);
    await expect(new OpenDsrSigner(LocalReceiptSigner.fromFile(otherKey), 'opendsr.example.com', issued).certificate()).rejects.toThrow(/not for the OpenDSR signing key/);
  });

  it('explains itself without --domain', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await openDsrCommand(['csr'])).toBe(2);
    expect(await openDsrCommand(['sign'])).toBe(2);
  });
});
