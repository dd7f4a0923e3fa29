import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDataMap, type DataMap } from '#core/config';
import { CONNECTOR_KINDS } from '#connectors/kinds';

/** Read and validate the data map at synth time: an invalid one fails `cdk synth` with every problem named. */
export function loadDataMap(path: string): DataMap {
  return parseDataMap(readFileSync(resolve(path), 'utf8'), CONNECTOR_KINDS);
}
