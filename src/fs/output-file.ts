/**
 * The rules for a command's output file: never overwrite by accident, never leave a half-written
 * file under the final name (write `NAME.partial`, rename at the end).
 */
import { access, rm } from 'node:fs/promises';
import { AirlockError } from '../errors.js';

export const PARTIAL_SUFFIX = '.partial';

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Refuse to replace an existing output unless the operator said `--force`. */
export async function checkOutputFree(path: string, force: boolean): Promise<void> {
  if (force) return;
  if (await fileExists(path)) {
    throw new AirlockError('USAGE', `${path} already exists`, {
      subject: path,
      hint: 'choose another output name, remove the file, or pass --force to replace it',
    });
  }
}

export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true }).catch(() => undefined);
}
