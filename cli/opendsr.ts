import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { certificateRequest } from '../functions/commons/opendsr.ts';
import { KmsReceiptSigner, LocalReceiptSigner } from '../functions/commons/receipts.ts';

const USAGE = `usage: lethe opendsr csr --domain <domain> [--key-id <OpenDsrKeyArn> | --state-dir <dir>] [--out <file>]

  csr   a certificate signing request (PKCS #10, PEM) for <domain> and the key that signs Lethe's
        OpenDSR answers and callbacks, signed by that key: give it to a certificate authority, and
        deploy with -c opendsrCertificate=<the issued certificate> -c opendsrDomain=<domain>, as
        OpenDSR wants a CA-issued certificate. --key-id is the stack's OpenDsrKeyArn output (KMS
        signs with your AWS credentials, which need kms:Sign and kms:GetPublicKey on it); without
        it, local mode's key in <state-dir> (default .lethe).`;

/** `lethe opendsr …`. */
export async function openDsrCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      domain: { type: 'string' },
      'key-id': { type: 'string' },
      'state-dir': { type: 'string', default: process.env['LETHE_STATE_DIR'] ?? '.lethe' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals[0] !== 'csr' || !values.domain) {
    console.error(USAGE);
    return 2;
  }
  const signer = values['key-id'] ? new KmsReceiptSigner(values['key-id']) : LocalReceiptSigner.fromFile(join(values['state-dir'], 'opendsr-key.pem'));
  const csr = await certificateRequest(signer, values.domain);
  if (values.out) writeFileSync(values.out, csr);
  else process.stdout.write(csr);
  return 0;
}
