#!/usr/bin/env node
import { auditConsistency } from './audit-consistency.ts';
import { auditVerify } from './audit-verify.ts';
import { costCommand } from './cost.ts';
import { openDsrCommand } from './opendsr.ts';
import { dashboardCommand } from './dashboard.ts';
import { datasetsCommand, filterDatasetCommand } from './datasets.ts';
import { plan } from './plan.ts';
import { receiptCommand } from './receipt.ts';
import { REQUEST_COMMANDS, requestCommand, type RequestCommand } from './requests.ts';

const USAGE = `usage: lethe <command>

  submit          submit a privacy request (--watch to follow it)
  status          where one request stands, system by system
  list            requests by status, type, regulation, overdue and time of receipt
  watch           follow a request system by system until it is final
  extend          extend a request's deadline, once, within its law's allowance
  cancel          cancel a request not yet final
  retry           run the failed tasks of a request again
  lookup          every request of a subject, by identities
  report          a period's summary (counts, overdue, time to completion), or its export
  plan            what a request would do, system by system, without changing anything
  audit verify    check audit chains and the audit log, saying where anything was altered
  audit consistency  check that the audit log only grew between two tree heads (or receipts)
  datasets        derived datasets and the erasures since each was rebuilt
  filter-dataset  a dataset file without the rows of erased and opted-out subjects
  receipt         get a final request's signed receipt, or verify one offline
  dashboard       the web dashboard against a deployed stack (local mode serves it at /dashboard/)
  cost            what a month of requests costs in AWS, by the measured model (--systems, --requests)
  opendsr csr     a certificate signing request for the key that signs OpenDSR answers and callbacks

They talk to local mode (--state-dir, default .lethe) or, with --api <url> or LETHE_API_URL, to a
deployed stack with your AWS credentials (SigV4). Run lethe <command> --help for its options.`;

/** The `lethe` command. Exit codes: 0 ok, 1 a check failed, 2 usage or setup error. */
async function main(argv: string[]): Promise<number> {
  const [first, second, ...rest] = argv;
  if (REQUEST_COMMANDS.includes(first as RequestCommand)) return requestCommand(first as RequestCommand, argv.slice(1));
  if (first === 'plan') return plan(argv.slice(1));
  if (first === 'audit' && second === 'verify') return auditVerify(rest);
  if (first === 'audit' && second === 'consistency') return auditConsistency(rest);
  if (first === 'dashboard') return dashboardCommand(argv.slice(1));
  if (first === 'datasets') return datasetsCommand(argv.slice(1));
  if (first === 'filter-dataset') return filterDatasetCommand(argv.slice(1));
  if (first === 'receipt') return receiptCommand(argv.slice(1));
  if (first === 'cost') return costCommand(argv.slice(1));
  if (first === 'opendsr') return openDsrCommand(argv.slice(1));
  console.error(USAGE);
  return first === undefined || first === '--help' || first === '-h' ? 0 : 2;
}

// Exit once what was printed has reached a pipe: process.exit alone cuts a large --json answer short.
const exit = (code: number) => process.stdout.write('', () => process.exit(code));

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (error: unknown) => {
    console.error(`lethe: ${(error as Error).name}: ${(error as Error).message}`);
    process.exit(2);
  },
);
