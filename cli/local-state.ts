import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalState } from '../local/runtime.ts';

export const localCredentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/** The running local mode's endpoints and names (`<stateDir>/local.json`), if there is one. */
export function readLocalState(stateDir: string): LocalState | undefined {
  const path = join(stateDir, 'local.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as LocalState) : undefined;
}
