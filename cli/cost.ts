import { parseArgs } from 'node:util';
import { costOf, MEASURED, PRICES, usagePerRequest } from '../core/cost.ts';

const USAGE = `usage: lethe cost [--systems <n>] [--requests <n>] [--json]

  What Lethe costs to run in AWS for that many requests a month, each reaching that many systems
  (defaults: 5 systems, 100,000 requests): the operations one request takes, as measured in local
  mode by npm run bench:cost (a fixed part and a part per system), priced at AWS list prices
  (us-east-1, on-demand, without free tiers). Connector targets (your databases, vendors), storage,
  keys' monthly fees and the schedules' fixed work (a few runs a minute) are not in it.`;

/** `lethe cost`. Exit codes: 0 printed, 2 usage error. */
export function costCommand(argv: string[]): number {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (error) {
    console.error(`lethe cost: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const systems = Number(values.systems);
  const requests = Number(values.requests);
  if (positionals.length > 0 || !Number.isInteger(systems) || systems < 1 || systems > 500 || !Number.isInteger(requests) || requests < 1) {
    console.error(`lethe cost: --systems must be a whole number from 1 to 500 and --requests a whole number from 1\n\n${USAGE}`);
    return 2;
  }
  const usage = usagePerRequest(systems);
  const { lines, total } = costOf(usage, requests);
  if (values.json) {
    console.log(JSON.stringify({ systems, requests, measured: MEASURED.date, perRequest: usage, lines, total, per1000: (total / requests) * 1000 }, null, 2));
    return 0;
  }
  const usd = (x: number) => (x >= 1 ? `$${x.toFixed(2)}` : `$${x.toFixed(4)}`);
  const count = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3));
  console.log(`Lethe in AWS: ${requests.toLocaleString('en-US')} requests across ${String(systems)} systems (model measured ${MEASURED.date})\n`);
  const price = (item: keyof typeof PRICES) => `$${String(PRICES[item].price)} per ${PRICES[item].per.toLocaleString('en-US')}`;
  const rows = lines.map((l) => [PRICES[l.item].what, count(usage[l.item]), count(l.quantity), price(l.item), usd(l.cost)]);
  const header = ['', 'per request', 'total', 'list price', 'cost'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  console.log(`\n${line(['Total', '', '', '', usd(total)])}`);
  console.log(`${line(['Per 1,000 requests', '', '', '', usd((total / requests) * 1000)])}`);
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      systems: { type: 'string', default: '5' },
      requests: { type: 'string', default: '100000' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}
