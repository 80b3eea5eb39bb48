/** The AirlockError a promise (or a function) fails with; any other outcome fails the test. */
import { type AirlockError, isAirlockError } from '../../src/errors.js';

export async function failure(p: Promise<unknown> | (() => unknown)): Promise<AirlockError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (isAirlockError(err)) return err;
    throw err;
  }
  throw new Error('expected an AirlockError');
}
