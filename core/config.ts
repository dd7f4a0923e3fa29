import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError, type FieldIssue } from './errors.ts';
import { streamFilterSchema, type StreamFilter } from './stream-filter.ts';
import { ACTIONS, DEFAULT_ACTION, REQUEST_TYPES, zodIssues, type Action, type RequestType } from './request.ts';

/**
 * The data map (`lethe.config.yaml`): every system that holds personal data, how Lethe reaches it,
 * and what each request type does there. Connector-specific settings are validated by the schema
 * that the connector kind supplies, so core never imports a connector.
 */

export interface ConnectorKindSpec {
  readonly actions: readonly Action[];
  readonly settings: z.ZodType;
  /** Whether its connector can resolve linked identities (`provides`). */
  readonly resolves?: boolean;
  /** Whether its stores usually sit in a private network (a database): its worker joins `network` in AWS. */
  readonly privateNetwork?: boolean;
  /** The actions one system offers, when they depend on its settings (a vendor's definition). */
  readonly actionsOf?: (settings: unknown) => readonly Action[];
  /** The longest a system's asynchronous jobs may take (their deadline), in seconds. */
  readonly longestJobSeconds?: (settings: unknown) => number;
  /** Whether its erasures are collected into batches (`settings.batch`), done in one pass. */
  readonly batches?: boolean;
}

export type ConnectorKinds = Readonly<Record<string, ConnectorKindSpec>>;

const systemName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be lower-case letters, digits and dashes, at most 40, starting with a letter');

const identityType = z.string().regex(/^[a-z][a-z0-9_]{1,63}$/, 'must be a lower-case identity type');

const systemSchema = z.strictObject({
  connector: z.string().min(1),
  description: z.string().optional(),
  identities: z.array(identityType).min(1, 'name at least one identity type'),
  /** Linked identities this system yields for the subject, resolved before anything is deleted. */
  provides: z.array(identityType).default([]),
  /** Systems whose action must finish before this one's runs. */
  dependsOn: z.array(z.string()).default([]),
  actions: z.partialRecord(z.enum(REQUEST_TYPES), z.union([z.enum(ACTIONS), z.literal('skip')])).optional(),
  concurrency: z.int().min(1).max(40).default(5),
  heartbeatSeconds: z.int().min(10).max(86_400).default(300),
  timeoutSeconds: z.int().min(30).max(31_536_000).default(3600),
  maxAttempts: z.int().min(1).max(20).default(5),
  settings: z.unknown().optional(),
});

/** The VPC that workers of database kinds join in AWS, to reach private RDS or ElastiCache. */
const networkSchema = z.strictObject({
  /** Private subnets with a route to the AWS APIs (a NAT gateway, or VPC endpoints). */
  subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be a subnet id')).min(1),
  /** Groups the databases admit. */
  securityGroupIds: z.array(z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'must be a security group id')).min(1),
});
export type NetworkConfig = z.infer<typeof networkSchema>;

/** Derived data: what is built from systems' data, and must be rebuilt once a subject is erased from them. */
export const DATASET_KINDS = ['training_set', 'feature_table', 'synthetic', 'model'] as const;
const datasetSchema = z.strictObject({
  kind: z.enum(DATASET_KINDS),
  description: z.string().optional(),
  /** Systems or other datasets it is built from. */
  derivedFrom: z.array(z.string()).min(1),
});

const dataMapSchema = z.strictObject({
  version: z.literal(1),
  datasets: z.record(systemName, datasetSchema).default({}),
  network: networkSchema.optional(),
  /** The identity types requests may carry. When given, any other type a system needs must be provided by a system. */
  identities: z.array(identityType).min(1).optional(),
  systems: z.record(systemName, systemSchema).refine((s) => Object.keys(s).length > 0, 'declare at least one system'),
  /** Firehose delivery streams, by name, whose records the stream filter drops or redacts for suppressed subjects. */
  streams: z.record(z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'must be a Firehose stream name'), streamFilterSchema).default({}),
});

export interface SystemConfig {
  readonly name: string;
  readonly connector: string;
  readonly description?: string | undefined;
  readonly identities: readonly string[];
  readonly provides: readonly string[];
  readonly dependsOn: readonly string[];
  /** The action for each request type; a type that is absent is skipped for this system. */
  readonly actions: Partial<Record<RequestType, Action>>;
  readonly concurrency: number;
  readonly heartbeatSeconds: number;
  readonly timeoutSeconds: number;
  readonly maxAttempts: number;
  /** Connector-specific settings, validated by the connector kind's schema. */
  readonly settings: unknown;
}

export interface DatasetConfig {
  readonly name: string;
  readonly kind: (typeof DATASET_KINDS)[number];
  readonly description?: string | undefined;
  readonly derivedFrom: readonly string[];
}

export interface DataMap {
  readonly version: 1;
  /** Datasets derived from systems (or from each other); absent: none. */
  readonly datasets?: readonly DatasetConfig[] | undefined;
  /** Identity types requests may carry; undefined: any. */
  readonly identities?: readonly string[] | undefined;
  /** Where database workers run in AWS; undefined: Lambda's default network. */
  readonly network?: NetworkConfig | undefined;
  readonly systems: readonly SystemConfig[];
  /** The stream filter's configuration of each Firehose delivery stream, by its name; absent: none. */
  readonly streams?: Readonly<Record<string, StreamFilter>> | undefined;
}

/** Parse and validate a data map, naming every problem at once with its path. */
export function parseDataMap(text: string, kinds: ConnectorKinds): DataMap {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message}` })));
  }
  return validateDataMap(doc.toJS() as unknown, kinds);
}

export function validateDataMap(input: unknown, kinds: ConnectorKinds): DataMap {
  const parsed = dataMapSchema.safeParse(input);
  if (!parsed.success) throw new ConfigError(zodIssues(parsed.error));

  const issues: FieldIssue[] = [];
  const systems: SystemConfig[] = [];
  for (const [name, system] of Object.entries(parsed.data.systems)) {
    const at = `systems.${name}`;
    const kind = kinds[system.connector];
    if (!kind) {
      issues.push({
        path: `${at}.connector`,
        message: `unknown connector kind "${system.connector}" (known: ${Object.keys(kinds).join(', ')})`,
      });
      continue;
    }
    const settings = kind.settings.safeParse(system.settings ?? {});
    if (!settings.success) {
      issues.push(...zodIssues(settings.error).map((i) => ({ ...i, path: `${at}.settings${i.path ? `.${i.path}` : ''}` })));
    }
    const offered = kind.actionsOf && settings.success ? kind.actionsOf(settings.data) : kind.actions;
    const actions: Partial<Record<RequestType, Action>> = {};
    for (const type of REQUEST_TYPES) {
      const declared = system.actions?.[type];
      if (declared === 'skip') continue;
      const action = declared ?? DEFAULT_ACTION[type];
      if (offered.includes(action)) {
        actions[type] = action;
      } else if (declared) {
        issues.push({
          path: `${at}.actions.${type}`,
          message: `connector "${system.connector}" cannot ${action} here (it can: ${offered.join(', ')})`,
        });
      }
    }
    const longestJob = kind.longestJobSeconds && settings.success ? kind.longestJobSeconds(settings.data) : 0;
    if (longestJob > system.timeoutSeconds) {
      issues.push({
        path: `${at}.timeoutSeconds`,
        message: `its vendor's jobs may take up to ${String(longestJob)} s: give the task at least that long (timeoutSeconds: ${String(longestJob)})`,
      });
    }
    if (actions.restrict === 'restrict' && actions.withdraw !== 'lift') {
      issues.push({ path: `${at}.actions.withdraw`, message: 'this system restricts, so a withdraw must lift what it restricted: withdraw: lift' });
    }
    if (system.provides.length > 0 && !kind.resolves) {
      issues.push({ path: `${at}.provides`, message: `connector "${system.connector}" cannot resolve linked identities` });
    }
    systems.push({ ...system, name, actions, settings: settings.success ? settings.data : system.settings });
  }
  const datasets = Object.entries(parsed.data.datasets).map(([name, d]) => ({ name, ...d }));
  issues.push(...dependencyIssues(systems), ...unprovidedIdentities(parsed.data.identities, systems), ...datasetIssues(datasets, systems));
  // A stream field of a type no request carries could never match a suppression.
  const known = parsed.data.identities;
  for (const [name, stream] of Object.entries(parsed.data.streams)) {
    stream.fields.forEach((f, i) => {
      if (known && !known.includes(f.identity)) issues.push({ path: `streams.${name}.fields.${String(i)}.identity`, message: `no request carries "${f.identity}" (identities: ${known.join(', ')})` });
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const streams = parsed.data.streams;
  return {
    version: 1,
    identities: parsed.data.identities,
    network: parsed.data.network,
    systems,
    ...(datasets.length > 0 && { datasets }),
    ...(Object.keys(streams).length > 0 && { streams }),
  };
}

/** dependsOn must name other systems and never loop; a loop is named system by system. */
function dependencyIssues(systems: readonly SystemConfig[]): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const names = new Set(systems.map((s) => s.name));
  for (const s of systems) {
    s.dependsOn.forEach((d, i) => {
      if (d === s.name) issues.push({ path: `systems.${s.name}.dependsOn.${String(i)}`, message: 'a system cannot depend on itself' });
      else if (!names.has(d)) issues.push({ path: `systems.${s.name}.dependsOn.${String(i)}`, message: `no system named "${d}"` });
    });
  }
  const reported = new Set<string>();
  const visit = (name: string, path: string[]): void => {
    const at = path.indexOf(name);
    if (at >= 0) {
      const cycle = [...path.slice(at), name];
      const key = [...cycle.slice(0, -1)].sort().join(',');
      if (!reported.has(key)) {
        reported.add(key);
        issues.push({ path: `systems.${name}.dependsOn`, message: `dependency cycle: ${cycle.join(' → ')}` });
      }
      return;
    }
    for (const d of systems.find((s) => s.name === name)?.dependsOn ?? []) if (d !== name && names.has(d)) visit(d, [...path, name]);
  };
  for (const s of systems) visit(s.name, []);
  return issues;
}

/** With the request identity types declared, every other type a system is keyed by must be provided. */
function unprovidedIdentities(requestTypes: readonly string[] | undefined, systems: readonly SystemConfig[]): FieldIssue[] {
  if (!requestTypes) return [];
  const available = new Set([...requestTypes, ...systems.flatMap((s) => s.provides)]);
  return systems.flatMap((s) =>
    s.identities.flatMap((type, i) =>
      available.has(type)
        ? []
        : [{ path: `systems.${s.name}.identities.${String(i)}`, message: `nothing provides "${type}": add it to identities or to a system's provides` }],
    ),
  );
}

/** A dataset is derived from systems or other datasets, never from itself through others. */
function datasetIssues(datasets: readonly DatasetConfig[], systems: readonly SystemConfig[]): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const names = new Set([...systems.map((s) => s.name), ...datasets.map((d) => d.name)]);
  for (const d of datasets) {
    if (systems.some((s) => s.name === d.name)) {
      issues.push({ path: `datasets.${d.name}`, message: 'a dataset cannot share its name with a system' });
      continue;
    }
    d.derivedFrom.forEach((source, i) => {
      if (!names.has(source)) issues.push({ path: `datasets.${d.name}.derivedFrom.${String(i)}`, message: `no system or dataset named "${source}"` });
    });
    if (taintedDatasets(datasets, [d.name]).includes(d.name)) issues.push({ path: `datasets.${d.name}.derivedFrom`, message: 'a dataset cannot be derived from itself' });
  }
  return issues;
}

/** Every dataset built, directly or through other datasets, from any of `sources` (systems or datasets). */
export function taintedDatasets(datasets: readonly DatasetConfig[], sources: readonly string[]): string[] {
  const tainted = new Set<string>();
  let frontier = [...sources];
  while (frontier.length > 0) {
    const next = datasets.filter((d) => !tainted.has(d.name) && d.derivedFrom.some((s) => frontier.includes(s))).map((d) => d.name);
    next.forEach((n) => tainted.add(n));
    frontier = next;
  }
  return [...tainted].sort();
}
