import type { SystemConfig } from '#core/config';
import { requireEnv } from './env.ts';

/** A system as the planner sees it: where its tasks go. */
export interface PlannedSystem
  extends Omit<SystemConfig, 'settings' | 'description'> {
  readonly queueUrl: string;
}

/**
 * The part of the data map a function needs, as `cdk synth` validated it: compiled into the
 * bundle (workers, whose settings can outgrow Lambda's 4 KB environment), or in the function's
 * environment (`LETHE_SYSTEMS`, JSON; also how local mode and tests give it).
 */
export function systemsFromEnv<T extends { name: string }>(): Map<string, T> {
  const bundled = (globalThis as { __LETHE_SYSTEMS__?: string }).__LETHE_SYSTEMS__;
  const systems = JSON.parse(bundled ?? requireEnv('LETHE_SYSTEMS')) as T[];
  return new Map(systems.map((s) => [s.name, s]));
}
