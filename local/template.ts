/**
 * Reads the template `cdk synth` produced and resolves it against local endpoints: every Ref,
 * Fn::GetAtt, Fn::Join, Fn::Sub and Fn::Select becomes the local name, URL or ARN of the resource
 * local mode stands up for it. Local mode runs what the stack declares, not a copy of it.
 */
export const REGION = 'us-east-1';
export const ACCOUNT = '000000000000';

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly Metadata?: Record<string, unknown>;
}
export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
}

export interface Physical {
  readonly ref: string;
  readonly attributes: Readonly<Record<string, string>>;
}

/** How each resource type is named locally; `queueUrl` comes from the SQS emulator. */
export function physicalId(
  logicalId: string,
  type: string,
  queueUrl: (name: string) => string,
): Physical {
  const arn = (service: string, resource: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${resource}`;
  switch (type) {
    case 'AWS::DynamoDB::Table':
      return { ref: logicalId, attributes: { Arn: arn('dynamodb', `table/${logicalId}`) } };
    case 'AWS::SQS::Queue':
      return {
        ref: queueUrl(logicalId),
        attributes: { Arn: arn('sqs', logicalId), QueueName: logicalId, QueueUrl: queueUrl(logicalId) },
      };
    case 'AWS::S3::Bucket': {
      const name = bucketName(logicalId);
      return { ref: name, attributes: { Arn: `arn:aws:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } };
    }
    case 'AWS::Lambda::Function':
      return { ref: logicalId, attributes: { Arn: arn('lambda', `function:${logicalId}`) } };
    case 'AWS::StepFunctions::StateMachine': {
      const a = arn('states', `stateMachine:${logicalId}`);
      return { ref: a, attributes: { Arn: a, Name: logicalId } };
    }
    case 'AWS::Events::EventBus':
      return { ref: logicalId, attributes: { Arn: arn('events', `event-bus/${logicalId}`), Name: logicalId } };
    case 'AWS::KMS::Key':
      return { ref: logicalId, attributes: { Arn: arn('kms', `key/${logicalId}`), KeyId: logicalId } };
    case 'AWS::SecretsManager::Secret':
      return { ref: arn('secretsmanager', `secret:${logicalId}`), attributes: {} };
    case 'AWS::SNS::Topic': {
      const a = arn('sns', logicalId);
      return { ref: a, attributes: { TopicArn: a, TopicName: logicalId } };
    }
    case 'AWS::IAM::Role':
      return { ref: logicalId, attributes: { Arn: `arn:aws:iam::${ACCOUNT}:role/${logicalId}` } };
    default:
      return { ref: logicalId, attributes: {} };
  }
}

export const bucketName = (logicalId: string) => `lethe-${logicalId.toLowerCase()}`;

export class Resolver {
  readonly #template: CfnTemplate;
  readonly #physical = new Map<string, Physical>();

  constructor(template: CfnTemplate, queueUrl: (name: string) => string) {
    this.#template = template;
    for (const [id, resource] of Object.entries(template.Resources)) {
      this.#physical.set(id, physicalId(id, resource.Type, queueUrl));
    }
  }

  resources(type: string): [string, CfnResource][] {
    return Object.entries(this.#template.Resources).filter(([, r]) => r.Type === type);
  }

  resource(logicalId: string): CfnResource {
    const r = this.#template.Resources[logicalId];
    if (!r) throw new Error(`template has no resource ${logicalId}`);
    return r;
  }

  ref(logicalId: string): string {
    return this.#pseudo(logicalId) ?? this.#get(logicalId).ref;
  }

  /** The logical id an ARN or name (as resolved here) belongs to. */
  logicalIdOf(value: string): string | undefined {
    for (const [id, p] of this.#physical) {
      if (p.ref === value || Object.values(p.attributes).includes(value)) return id;
    }
    return undefined;
  }

  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1) {
      const [fn, arg] = entries[0]!;
      switch (fn) {
        case 'Ref':
          return this.ref(arg as string);
        case 'Fn::GetAtt': {
          const [id, attribute] = Array.isArray(arg) ? (arg as string[]) : (arg as string).split('.');
          const found = this.#get(id!).attributes[attribute!];
          if (found === undefined) throw new Error(`local mode cannot resolve ${id!}.${attribute!}`);
          return found;
        }
        case 'Fn::Join': {
          const [sep, parts] = arg as [string, unknown[]];
          return parts.map((p) => String(this.resolve(p))).join(sep);
        }
        case 'Fn::Select': {
          const [index, list] = arg as [number, unknown];
          return (this.resolve(list) as unknown[])[index];
        }
        case 'Fn::Split': {
          const [sep, text] = arg as [string, unknown];
          return String(this.resolve(text)).split(sep);
        }
        case 'Fn::Sub': {
          const [text, vars] = Array.isArray(arg) ? (arg as [string, Record<string, unknown>]) : [arg as string, {}];
          return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
            if (name in vars) return String(this.resolve(vars[name]));
            const [id, attribute] = name.split('.');
            return attribute ? String(this.resolve({ 'Fn::GetAtt': [id, attribute] })) : this.ref(name);
          });
        }
      }
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(v)]));
  }

  #get(logicalId: string): Physical {
    const p = this.#physical.get(logicalId);
    if (!p) throw new Error(`template has no resource ${logicalId}`);
    return p;
  }

  #pseudo(name: string): string | undefined {
    return {
      'AWS::Region': REGION,
      'AWS::AccountId': ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': 'Lethe',
      'AWS::NoValue': '',
    }[name];
  }
}
