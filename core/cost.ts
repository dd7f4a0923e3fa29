/**
 * What Lethe costs to run in AWS: the operations one request takes (measured in local mode by
 * `npm run bench:cost`, as a fixed part and a part per system), priced at AWS list prices.
 */

/** The billable operations of one request (or of many, summed). */
export interface Usage {
  /** Step Functions Standard: each state entered, each retry. */
  readonly stateTransitions: number;
  readonly lambdaRequests: number;
  /** Lambda time × memory, in GB-seconds (as measured locally: AWS's will differ). */
  readonly lambdaGbSeconds: number;
  /** SQS API requests (a batch of up to 10 messages is one). */
  readonly sqsRequests: number;
  /** DynamoDB on-demand write and read request units (transactions count double). */
  readonly dynamoWriteUnits: number;
  readonly dynamoReadUnits: number;
  /** S3 PUT, COPY, POST and LIST requests; GET and HEAD requests. DELETE is free. */
  readonly s3PutRequests: number;
  readonly s3GetRequests: number;
  /** KMS: symmetric requests (GenerateDataKey, Decrypt), and asymmetric signing (the receipt key). */
  readonly kmsRequests: number;
  readonly kmsSignRequests: number;
  /** EventBridge custom events put (Lethe's own announcements). */
  readonly eventBridgeEvents: number;
  /** API Gateway REST API requests (the submission; an EventBridge submission is an event instead). */
  readonly apiRequests: number;
  /** CloudWatch Logs ingested, in GB. */
  readonly logGb: number;
}

export const USAGE_KEYS = [
  'stateTransitions',
  'lambdaRequests',
  'lambdaGbSeconds',
  'sqsRequests',
  'dynamoWriteUnits',
  'dynamoReadUnits',
  's3PutRequests',
  's3GetRequests',
  'kmsRequests',
  'kmsSignRequests',
  'eventBridgeEvents',
  'apiRequests',
  'logGb',
] as const satisfies readonly (keyof Usage)[];

/** AWS list prices, us-east-1, on-demand, without free tiers, as of 2026-11. */
export const PRICES: Readonly<Record<keyof Usage, { readonly price: number; readonly per: number; readonly what: string }>> = {
  stateTransitions: { price: 0.025, per: 1_000, what: 'Step Functions Standard state transitions' },
  lambdaRequests: { price: 0.2, per: 1_000_000, what: 'Lambda requests' },
  lambdaGbSeconds: { price: 0.0000133334, per: 1, what: 'Lambda GB-seconds (arm64)' },
  sqsRequests: { price: 0.4, per: 1_000_000, what: 'SQS standard requests' },
  dynamoWriteUnits: { price: 0.625, per: 1_000_000, what: 'DynamoDB on-demand write request units' },
  dynamoReadUnits: { price: 0.125, per: 1_000_000, what: 'DynamoDB on-demand read request units' },
  s3PutRequests: { price: 0.005, per: 1_000, what: 'S3 PUT, COPY, POST, LIST requests' },
  s3GetRequests: { price: 0.0004, per: 1_000, what: 'S3 GET, HEAD requests' },
  kmsRequests: { price: 0.03, per: 10_000, what: 'KMS symmetric requests' },
  kmsSignRequests: { price: 0.15, per: 10_000, what: 'KMS asymmetric (ECC) signing requests' },
  eventBridgeEvents: { price: 1, per: 1_000_000, what: 'EventBridge custom events' },
  apiRequests: { price: 3.5, per: 1_000_000, what: 'API Gateway REST requests' },
  logGb: { price: 0.5, per: 1, what: 'CloudWatch Logs ingestion (GB)' },
};

/**
 * Operations per request, measured by `npm run bench:cost` in local mode (100 erasures of subjects
 * found in every system, with three systems and with one, fitted to a fixed part and a part per
 * system; BENCHMARKS.md has the run). Lambda GB-seconds are this machine's time under load, and
 * overstate what the same functions take in Lambda.
 */
export const MEASURED: { readonly date: string; readonly base: Usage; readonly perSystem: Usage } = {
  date: '2026-11-30',
  base: {
    stateTransitions: 5,
    lambdaRequests: 5.026,
    lambdaGbSeconds: 0,
    sqsRequests: 5.05,
    dynamoWriteUnits: 32.78,
    dynamoReadUnits: 19.02,
    s3PutRequests: 2.026,
    s3GetRequests: 2.945,
    kmsRequests: 1,
    kmsSignRequests: 0.02,
    eventBridgeEvents: 0,
    apiRequests: 1,
    logGb: 2.635e-6,
  },
  perSystem: {
    stateTransitions: 1,
    lambdaRequests: 0.9047,
    lambdaGbSeconds: 1.506,
    sqsRequests: 2.83,
    dynamoWriteUnits: 18.58,
    dynamoReadUnits: 10.18,
    s3PutRequests: 3.012,
    s3GetRequests: 1.99,
    kmsRequests: 1,
    kmsSignRequests: 0,
    eventBridgeEvents: 0,
    apiRequests: 0,
    logGb: 6.901e-7,
  },
};

/** One request's operations with `systems` systems, by the measured model. */
export function usagePerRequest(systems: number, model: { base: Usage; perSystem: Usage } = MEASURED): Usage {
  return Object.fromEntries(USAGE_KEYS.map((k) => [k, model.base[k] + model.perSystem[k] * systems])) as unknown as Usage;
}

export interface CostLine {
  readonly item: keyof Usage;
  readonly what: string;
  readonly quantity: number;
  readonly cost: number;
}

/** `usage` (of one request) for `requests` requests, priced line by line, largest first. */
export function costOf(usage: Usage, requests: number): { lines: CostLine[]; total: number } {
  const lines = USAGE_KEYS.map((item) => {
    const quantity = usage[item] * requests;
    return { item, what: PRICES[item].what, quantity, cost: (quantity / PRICES[item].per) * PRICES[item].price };
  }).sort((a, b) => b.cost - a.cost);
  return { lines, total: lines.reduce((n, l) => n + l.cost, 0) };
}
