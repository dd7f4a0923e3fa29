import type { SystemConfig } from '#core/config';
import { requireEnv } from './env.ts';

/** A system as the planner sees it: where its tasks go. */
export interface PlannedSystem
  extends Omit<SystemConfig, 'settings' | 'description'> {
  readonly queueUrl: string;
}

/**
 * The part of the data map a function needs, as `cdk synth` validated it and wrote it into the
 * function's environment (`LETHE_SYSTEMS`, JSON).
 */
export function systemsFromEnv<T extends { name: string }>(): Map<string, T> {
  const systems = JSON.parse(requireEnv('LETHE_SYSTEMS')) as T[];
  return new Map(systems.map((s) => [s.name, s]));
}
