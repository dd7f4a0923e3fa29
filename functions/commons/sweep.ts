/** `work` on every item, at most `width` at once. */
export async function eachInParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

export interface SweepResult {
  /** Items worked on. */
  readonly done: number;
  /** Stopped with pages left, the invocation's time nearly spent: the next run goes on from them. */
  readonly unfinished: boolean;
}

/**
 * A scheduled sweep: page after page until none is left, each page's items `width` at a time,
 * stopping early only when less than `reserveMs` of the invocation remains. It never stops at a
 * count: whatever is due is worked on, or reported `unfinished` for the next run to go on with.
 */
export async function sweep<T>(
  pages: AsyncIterable<readonly T[]>,
  work: (item: T) => Promise<void>,
  options: { readonly width: number; readonly timeLeftMs: () => number; readonly reserveMs: number },
): Promise<SweepResult> {
  let done = 0;
  for await (const page of pages) {
    if (options.timeLeftMs() < options.reserveMs) return { done, unfinished: true };
    await eachInParallel(page, options.width, work);
    done += page.length;
  }
  return { done, unfinished: false };
}
