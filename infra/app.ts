import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { readFileSync } from 'node:fs';
import { ConfigError } from '#core/errors';
import { assertDeployable, loadDataMap } from './data-map.ts';
import { LetheStack } from './lethe-stack.ts';

export interface BuildOptions {
  /** Path of the data map. @default context `letheConfig`, else lethe.config.yaml */
  readonly configPath?: string;
  readonly outdir?: string;
  /** Skip esbuild bundling (local mode runs the handlers from source). @default false */
  readonly skipBundling?: boolean;
  /** Object Lock default retention of audit records. @default context `auditRetentionDays`, else 730 */
  readonly auditRetentionDays?: number;
  /** Days after a request is final until its data key is destroyed. @default context `shredAfterDays`, else 30 */
  readonly shredAfterDays?: number;
  /** Saga executions the starter begins a second, at most. @default context `startsPerSecond`, else 100 */
  readonly startsPerSecond?: number;
  /**
   * `local`: the template local mode runs, where connection secrets may come from the environment
   * or a file. `aws`: a deployable template, secrets by reference only. @default 'aws'
   */
  readonly target?: 'aws' | 'local';
}

/** The Lethe CDK app with cdk-nag's AwsSolutions and Serverless packs on every synth. */
export function buildApp(options: BuildOptions = {}): { app: App; stack: LetheStack } {
  const app = new App({
    ...(options.outdir ? { outdir: options.outdir } : {}),
    ...(options.skipBundling ? { context: { 'aws:cdk:bundling-stacks': [] } } : {}),
  });
  const configPath = options.configPath ?? (app.node.tryGetContext('letheConfig') as string | undefined) ?? 'lethe.config.yaml';
  const retention = options.auditRetentionDays ?? (app.node.tryGetContext('auditRetentionDays') as string | number | undefined);
  const shredAfter = options.shredAfterDays ?? (app.node.tryGetContext('shredAfterDays') as string | number | undefined);
  const starts = options.startsPerSecond ?? (app.node.tryGetContext('startsPerSecond') as string | number | undefined);
  // OpenDSR: the domain it signs for, and a CA-issued certificate (a PEM file) for its key.
  const openDsrDomain = app.node.tryGetContext('opendsrDomain') as string | undefined;
  const openDsrCertificate = app.node.tryGetContext('opendsrCertificate') as string | undefined;
  const dataMap = loadDataMap(configPath);
  if (options.target !== 'local') assertDeployable(dataMap);
  const stack = new LetheStack(app, 'Lethe', {
    dataMap,
    ...(retention === undefined ? {} : { auditRetentionDays: Number(retention) }),
    ...(shredAfter === undefined ? {} : { shredAfterDays: Number(shredAfter) }),
    ...(openDsrDomain ? { openDsrDomain } : {}),
    ...(openDsrCertificate ? { openDsrCertificate: readFileSync(openDsrCertificate, 'utf8') } : {}),
    ...(starts === undefined ? {} : { startsPerSecond: Number(starts) }),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
  return { app, stack };
}

if (import.meta.main) {
  try {
    buildApp().app.synth();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`The data map cannot be synthesized for AWS:\n${error.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
    process.exitCode = 1;
  }
}
