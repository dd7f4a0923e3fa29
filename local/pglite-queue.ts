import type { PGlite } from '@electric-sql/pglite';

interface Queued {
  readonly handlerId: number;
  readonly message: Uint8Array;
  readonly onData: (data: Uint8Array) => void;
  readonly resolve: (bytes: number) => void;
  readonly reject: (error: unknown) => void;
}

/** Extended-query protocol messages that leave a batch open until its Sync: Parse, Bind, Describe, Execute, Close, Flush. */
const OPENS_BATCH = new Set(['P', 'B', 'D', 'E', 'C', 'H'].map((c) => c.charCodeAt(0)));

/**
 * The order in which PGlite's one session serves the connections of a PGlite socket server, in
 * place of pglite-socket's own (0.2.17), which has two defects (electric-sql/pglite#1046): it
 * hands the session from one connection to another between the messages of an extended-protocol
 * batch, so a Bind finds another connection's Parse (SQLSTATE 26000 or 34000, or worse, rows of
 * the other query), and after one message fails inside PGlite it never serves another.
 *
 * Here a connection keeps the session from the first message of a batch to its Sync, and for as
 * long as a transaction it opened is open; a failed message fails that message alone. It has the
 * interface the socket server's connection handlers call (`enqueue`, `getQueueLength`,
 * `clearQueueForHandler`, `clearTransactionIfNeeded`).
 */
export class SessionQueue {
  readonly #db: PGlite;
  #queue: Queued[] = [];
  #owner: number | null = null;
  #running = false;

  constructor(db: PGlite) {
    this.#db = db;
  }

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ handlerId, message, onData, resolve, reject });
      void this.#drain();
    });
  }

  getQueueLength(): number {
    return this.#queue.length;
  }

  clearQueueForHandler(handlerId: number): void {
    this.#queue = this.#queue.filter((q) => {
      if (q.handlerId !== handlerId) return true;
      q.reject(new Error('Handler disconnected'));
      return false;
    });
  }

  /** A connection went away: roll back what it left open and give the session to the others. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.#owner !== handlerId) return;
    if (this.#db.isInTransaction()) await this.#db.exec('ROLLBACK').catch(() => undefined);
    this.#owner = null;
    void this.#drain();
  }

  async #drain(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      for (;;) {
        // The owner's next message, when it comes; anyone's, when the session is free.
        const index = this.#owner === null ? (this.#queue.length > 0 ? 0 : -1) : this.#queue.findIndex((q) => q.handlerId === this.#owner);
        if (index === -1) break;
        const [item] = this.#queue.splice(index, 1) as [Queued];
        let bytes = 0;
        try {
          await this.#db.runExclusive(() =>
            this.#db.execProtocolRawStream(item.message, {
              onRawData: (data) => {
                bytes += data.length;
                item.onData(data);
              },
            }),
          );
          item.resolve(bytes);
        } catch (error) {
          item.reject(error);
        }
        // (A startup message has no type byte: its first is its length's, 0.)
        this.#owner = OPENS_BATCH.has(item.message[0]!) || this.#db.isInTransaction() ? item.handlerId : null;
      }
    } finally {
      this.#running = false;
    }
  }
}
