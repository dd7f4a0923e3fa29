import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError, type FieldIssue } from './errors.ts';
import { ACTIONS, DEFAULT_ACTION, REQUEST_TYPES, zodIssues, type Action, type RequestType } from './request.ts';

/**
 * The data map (`lethe.config.yaml`): every system that holds personal data, how Lethe reaches it,
 * and what each request type does there. Connector-specific settings are validated by the schema
 * that the connector kind supplies, so core never imports a connector.
 */

export interface ConnectorKindSpec {
  readonly actions: readonly Action[];
  readonly settings: z.ZodType;
}

export type ConnectorKinds = Readonly<Record<string, ConnectorKindSpec>>;

const systemName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be lower-case letters, digits and dashes, at most 40, starting with a letter');

const systemSchema = z.strictObject({
  connector: z.string().min(1),
  description: z.string().optional(),
  identities: z.array(z.string().regex(/^[a-z][a-z0-9_]{1,63}$/)).min(1, 'name at least one identity type'),
  actions: z.partialRecord(z.enum(REQUEST_TYPES), z.union([z.enum(ACTIONS), z.literal('skip')])).optional(),
  concurrency: z.int().min(1).max(40).default(5),
  heartbeatSeconds: z.int().min(10).max(86_400).default(300),
  timeoutSeconds: z.int().min(30).max(31_536_000).default(3600),
  maxAttempts: z.int().min(1).max(20).default(5),
  settings: z.unknown().optional(),
});

const dataMapSchema = z.strictObject({
  version: z.literal(1),
  systems: z.record(systemName, systemSchema).refine((s) => Object.keys(s).length > 0, 'declare at least one system'),
});

export interface SystemConfig {
  readonly name: string;
  readonly connector: string;
  readonly description?: string | undefined;
  readonly identities: readonly string[];
  /** The action for each request type; a type that is absent is skipped for this system. */
  readonly actions: Partial<Record<RequestType, Action>>;
  readonly concurrency: number;
  readonly heartbeatSeconds: number;
  readonly timeoutSeconds: number;
  readonly maxAttempts: number;
  /** Connector-specific settings, validated by the connector kind's schema. */
  readonly settings: unknown;
}

export interface DataMap {
  readonly version: 1;
  readonly systems: readonly SystemConfig[];
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
    const actions: Partial<Record<RequestType, Action>> = {};
    for (const type of REQUEST_TYPES) {
      const declared = system.actions?.[type];
      if (declared === 'skip') continue;
      const action = declared ?? DEFAULT_ACTION[type];
      if (kind.actions.includes(action)) {
        actions[type] = action;
      } else if (declared) {
        issues.push({
          path: `${at}.actions.${type}`,
          message: `connector "${system.connector}" cannot ${action} (it can: ${kind.actions.join(', ')})`,
        });
      }
    }
    systems.push({ ...system, name, actions, settings: settings.success ? settings.data : system.settings });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { version: 1, systems };
}
