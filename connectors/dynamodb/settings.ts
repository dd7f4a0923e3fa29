import { z } from 'zod';
import type { Action } from '#core/request';

export const DYNAMODB_ACTIONS: readonly Action[] = ['delete', 'anonymize'];

const attributeName = z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/, 'must be a DynamoDB attribute name');

/** One table of a `connector: dynamodb` system. */
export const dynamoDbTableSchema = z
  .strictObject({
    table: z.string().regex(/^[A-Za-z0-9_.-]{3,255}$/, 'must be a DynamoDB table name'),
    partitionKey: attributeName,
    sortKey: attributeName.optional(),
    /**
     * How to find the subject's items: by an identity held in the partition key itself, or in an
     * attribute that a global secondary index is keyed on. Lethe never scans.
     */
    lookups: z
      .array(
        z.strictObject({
          identity: z.string().min(1),
          attribute: attributeName,
          index: z.string().min(3).optional(),
        }),
      )
      .min(1, 'declare at least one lookup'),
    /** Attributes removed by the `anonymize` action. */
    anonymize: z.array(attributeName).default([]),
  })
  .superRefine((s, ctx) => {
    s.lookups.forEach((lookup, i) => {
      if (!lookup.index && lookup.attribute !== s.partitionKey) {
        ctx.addIssue({
          code: 'custom',
          path: ['lookups', i, 'index'],
          message: `attribute "${lookup.attribute}" is not the partition key: name the index keyed on it (Lethe does not scan)`,
        });
      }
    });
    s.anonymize.forEach((attribute, i) => {
      if (attribute === s.partitionKey || attribute === s.sortKey) {
        ctx.addIssue({ code: 'custom', path: ['anonymize', i], message: 'a key attribute cannot be anonymized' });
      }
    });
  });

export type DynamoDbTable = z.infer<typeof dynamoDbTableSchema>;

/** `settings` of a `connector: dynamodb` system: the tables that hold the subject's items. */
export const dynamoDbSettingsSchema = z.strictObject({ tables: z.array(dynamoDbTableSchema).min(1) });
export type DynamoDbSettings = z.infer<typeof dynamoDbSettingsSchema>;
