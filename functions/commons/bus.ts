import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { RetryableError } from '#core/errors';

/** Every event Lethe announces on its bus comes from this source. */
export const LETHE_SOURCE = 'lethe';

/** Puts events of one detail type on the Lethe bus; throws RetryableError when any is not accepted. */
export type Publish = (detailType: string, details: readonly object[]) => Promise<void>;

let events: EventBridgeClient | undefined;

/** A publisher to the bus of that name (EventBridge in AWS and in local mode), ten entries a call. */
export function publisherTo(bus: string): Publish {
  return async (detailType, details) => {
    for (let i = 0; i < details.length; i += 10) {
      const entries = details.slice(i, i + 10).map((d) => ({ EventBusName: bus, Source: LETHE_SOURCE, DetailType: detailType, Detail: JSON.stringify(d) }));
      const out = await (events ??= new EventBridgeClient({})).send(new PutEventsCommand({ Entries: entries }));
      if (out.FailedEntryCount) throw new RetryableError(`${String(out.FailedEntryCount)} ${detailType} events were not accepted`);
    }
  };
}
