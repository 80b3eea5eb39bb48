/**
 * A counting semaphore bounding concurrent blob transfers; waiters are served first come, first
 * served, and a waiter whose signal aborts leaves the queue.
 */
import { AirlockError } from '../errors.js';

/** At most `size` holders at once. */
export class Semaphore {
  #free: number;
  readonly #waiters: Array<() => void> = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`semaphore size must be a positive integer, got ${size}`);
    this.#free = size;
  }

  /** Wait for a permit; the returned function releases it (calling it twice is harmless). */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted === true) throw interrupted(signal);
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const grant = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.#waiters.indexOf(grant);
          if (i !== -1) this.#waiters.splice(i, 1);
          reject(interrupted(signal as AbortSignal));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#waiters.push(grant);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next === undefined) this.#free++;
      else next(); // hand the permit straight over
    };
  }
}

function interrupted(signal: AbortSignal): AirlockError {
  return new AirlockError('INTERRUPTED', 'interrupted while waiting for a transfer slot', { cause: signal.reason });
}
