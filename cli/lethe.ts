#!/usr/bin/env node
import { auditConsistency } from './audit-consistency.ts';
import { auditVerify } from './audit-verify.ts';
import { datasetsCommand, filterDatasetCommand } from './datasets.ts';
import { plan } from './plan.ts';
import { receiptCommand } from './receipt.ts';
import { listCommand, statusCommand } from './requests.ts';

const USAGE = `usage: lethe <command>

  status          where one request stands, system by system
  list            requests by status, type, regulation, overdue and time of receipt
  plan            what a request would do, system by system, without changing anything
  audit verify    check audit chains and the audit log, saying where anything was altered
  audit consistency  check that the audit log only grew between two tree heads (or receipts)
  datasets        derived datasets and the erasures since each was rebuilt
  filter-dataset  a dataset file without the rows of erased and opted-out subjects
  receipt         get a final request's signed receipt, or verify one offline

Run lethe <command> --help for a command's options.`;

/** The `lethe` command. Exit codes: 0 ok, 1 a check failed, 2 usage or setup error. */
async function main(argv: string[]): Promise<number> {
  const [first, second, ...rest] = argv;
  if (first === 'status') return statusCommand(argv.slice(1));
  if (first === 'list') return listCommand(argv.slice(1));
  if (first === 'plan') return plan(argv.slice(1));
  if (first === 'audit' && second === 'verify') return auditVerify(rest);
  if (first === 'audit' && second === 'consistency') return auditConsistency(rest);
  if (first === 'datasets') return datasetsCommand(argv.slice(1));
  if (first === 'filter-dataset') return filterDatasetCommand(argv.slice(1));
  if (first === 'receipt') return receiptCommand(argv.slice(1));
  console.error(USAGE);
  return first === undefined || first === '--help' || first === '-h' ? 0 : 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`lethe: ${(error as Error).name}: ${(error as Error).message}`);
    process.exit(2);
  },
);
