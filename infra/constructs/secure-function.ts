import { Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
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

/** Metadata key holding the systems compiled into a function's bundle; local mode reads it. */
export const SYSTEMS_METADATA = 'lethe:systems';

/** Lambda's limit on a function's environment variables, names and values together. */
const ENVIRONMENT_LIMIT = 4096;

export interface SecureFunctionProps {
  /** Folder under `functions/` holding `handler.ts`. */
  readonly handler: string;
  readonly description: string;
  readonly environment?: Record<string, string>;
  /** @default 30 seconds */
  readonly timeout?: Duration;
  /** @default 512 MiB */
  readonly memorySize?: number;
  /**
   * The data map's systems for this function (JSON, no tokens), compiled into its bundle rather
   * than its environment, which Lambda caps at 4 KB. Local mode reads it from the template's metadata.
   */
  readonly bundledSystems?: string;
  /** Shell commands run after esbuild, to add files to the bundle (`inputDir` is the project root). */
  readonly afterBundling?: (inputDir: string, outputDir: string) => string[];
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
        ...(props.bundledSystems ? { define: { 'globalThis.__LETHE_SYSTEMS__': JSON.stringify(props.bundledSystems) } } : {}),
        ...(props.afterBundling && { commandHooks: { beforeBundling: () => [], beforeInstall: () => [], afterBundling: props.afterBundling } }),
      },
    });
    const cfn = this.node.defaultChild as CfnFunction;
    cfn.addMetadata(ENTRY_METADATA, relative(PROJECT_ROOT, entry));
    if (props.bundledSystems) cfn.addMetadata(SYSTEMS_METADATA, props.bundledSystems);
    // Lambda refuses more than 4 KB of environment (names and values): fail synth, not the deployment.
    const environment = { ...props.environment };
    this.node.addValidation({
      validate: () => {
        const stack = Stack.of(this);
        const bytes = Object.entries(environment).reduce((n, [k, v]) => {
          const value = Token.isUnresolved(v) ? JSON.stringify(stack.resolve(v)) : v;
          return n + Buffer.byteLength(k) + Buffer.byteLength(value);
        }, 0);
        return bytes > ENVIRONMENT_LIMIT
          ? [`${id}: its environment is about ${String(bytes)} bytes, over Lambda's ${String(ENVIRONMENT_LIMIT)}: the data map gives this function too many or too large systems`]
          : [];
      },
    });
    if (props.network) {
      // Subnets and groups by id, as the data map gives them: no VPC lookup, so synth stays offline.
      cfn.vpcConfig = { subnetIds: [...props.network.subnetIds], securityGroupIds: [...props.network.securityGroupIds] };
      this.role?.addManagedPolicy(ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'));
    }
  }
}
