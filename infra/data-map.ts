import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDataMap, type DataMap } from '#core/config';
import { ConfigError } from '#core/errors';
import { CONNECTOR_KINDS } from '#connectors/kinds';
import { secretSources } from '#connectors/secrets';

/** Read and validate the data map at synth time: an invalid one fails `cdk synth` with every problem named. */
export function loadDataMap(path: string): DataMap {
  return parseDataMap(readFileSync(resolve(path), 'utf8'), CONNECTOR_KINDS);
}

/**
 * A data map to deploy to AWS: connection secrets by reference only. An `env` or `file` source
 * would be a plain-text Lambda variable or a file in the bundle, so synth refuses it, naming each.
 */
export function assertDeployable(dataMap: DataMap): void {
  const issues = dataMap.systems.flatMap((system) =>
    secretSources(system.settings).flatMap(({ at, source }) => {
      if ('secretArn' in source || 'ssmParameter' in source) return [];
      const kind = 'env' in source ? `{ env: ${source.env} }` : `{ file: ${source.file} }`;
      return [{ path: `systems.${system.name}.settings.${at}`, message: `${kind} is for local mode; to deploy, give it as { secretArn } or { ssmParameter }` }];
    }),
  );
  if (issues.length > 0) throw new ConfigError(issues);
}
