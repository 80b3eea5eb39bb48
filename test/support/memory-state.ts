/**
 * An import record kept in memory: the store behind the same interface as a registry's artifact
 * or a layout's file, for tests whose sink is a test double. It round-trips through the bytes, as
 * the real stores do.
 */
import { emptyState, parseImportState, serializeImportState, type ImportState, type ImportStateStore } from '../../src/rollback/import-state.js';

export class MemoryStateStore implements ImportStateStore {
  readonly where = 'memory';
  state: ImportState = emptyState();
  writes = 0;

  async read(): Promise<ImportState> {
    return parseImportState(serializeImportState(this.state), this.where);
  }

  async write(state: ImportState): Promise<void> {
    this.writes++;
    this.state = parseImportState(serializeImportState(state), this.where);
  }
}
