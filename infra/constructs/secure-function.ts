import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { ManagedPolicy } from 'aws-cdk-lib/aws-iam';
import { Architecture, CfnFunction, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative } from 'node:path';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Metadata key naming a function's handler source; local mode reads it from the template. */
export const ENTRY_METADATA = 'lethe:entry';

export interface SecureFunctionProps {
  /** Folder under `functions/` holding `handler.ts`. */
  readonly handler: string;
  readonly description: string;
  readonly environment?: Record<string, string>;
  /** @default 30 seconds */
  readonly timeout?: Duration;
  /** @default 512 MiB */
  readonly memorySize?: number;
  /** Subnets and security groups of a VPC to run in (to reach private databases). @default Lambda's default network */
  readonly network?: { readonly subnetIds: readonly string[]; readonly securityGroupIds: readonly string[] };
}

/**
 * Every Lethe function: Node.js 22 on ARM64, bundled by esbuild as ESM (no Docker), X-Ray
 * tracing, JSON logs in a log group kept for a year, and Powertools configured by environment.
 */
export class SecureFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: SecureFunctionProps) {
    const entry = join(PROJECT_ROOT, 'functions', props.handler, 'handler.ts');
    const logGroup = new LogGroup(scope, `${id}Logs`, {
      retention: RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    super(scope, id, {
      entry,
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(30),
      tracing: Tracing.ACTIVE,
      loggingFormat: LoggingFormat.JSON,
      logGroup,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        POWERTOOLS_SERVICE_NAME: `lethe-${props.handler}`,
        POWERTOOLS_METRICS_NAMESPACE: 'Lethe',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        mainFields: ['module', 'main'],
        banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
    });
    const cfn = this.node.defaultChild as CfnFunction;
    cfn.addMetadata(ENTRY_METADATA, relative(PROJECT_ROOT, entry));
    if (props.network) {
      // Subnets and groups by id, as the data map gives them: no VPC lookup, so synth stays offline.
      cfn.vpcConfig = { subnetIds: [...props.network.subnetIds], securityGroupIds: [...props.network.securityGroupIds] };
      this.role?.addManagedPolicy(ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'));
    }
  }
}
