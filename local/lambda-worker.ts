import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';

/** One Lambda execution environment: loads the handler once, then serves invocations one at a time. */
interface Init {
  readonly entry: string;
  readonly functionName: string;
  readonly timeoutMs: number;
  readonly memoryMb: number;
  /** A module to load before the handler (the chaos suite's fault injection). */
  readonly preload?: string | undefined;
}
const init = workerData as Init;
const port = parentPort!;
if (init.preload) await import(pathToFileURL(init.preload).href);
const module = (await import(pathToFileURL(init.entry).href)) as {
  handler: (event: unknown, context: unknown) => Promise<unknown>;
};

port.on('message', (message: { id: string; event: unknown }) => {
  const started = Date.now();
  const context = {
    functionName: init.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${init.functionName}`,
    memoryLimitInMB: String(init.memoryMb),
    awsRequestId: message.id,
    logGroupName: `/aws/lambda/${init.functionName}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, init.timeoutMs - (Date.now() - started)),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
  module.handler(message.event, context).then(
    (result) => port.postMessage({ id: message.id, ok: true, result }),
    (error: unknown) => {
      const e = error instanceof Error ? error : new Error(String(error));
      port.postMessage({ id: message.id, ok: false, error: { name: e.name, message: e.message } });
    },
  );
});
port.postMessage({ ready: true });
