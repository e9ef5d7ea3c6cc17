/**
 * The state file of {@link extractImage}: which layers of which image a
 * directory holds, so that extracting the same image again is a no-op and an
 * interrupted extraction carries on from its last whole layer. It sits beside
 * the directory (`PARENT/.NAME.extract-state.json`), never inside the root
 * filesystem, and is replaced atomically after each layer.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { RootfsCheckpoint } from './rootfs-writer.js';

/** What the state file holds. */
export interface ExtractState {
  /** Format version. */
  version: 1;
  /** The diff_ids of the layers being extracted, in order: the key. */
  diffIds: string[];
  /** How many of them are applied whole. */
  applied: number;
  /** Whether the extraction finished (directory metadata set). */
  complete: boolean;
  /** The writer's state after the last whole layer. */
  checkpoint: RootfsCheckpoint;
}

/** The default state file of a root filesystem directory. */
export function defaultStatePath(dir: string): string {
  const absolute = resolve(dir);
  return join(dirname(absolute), `.${basename(absolute)}.extract-state.json`);
}

/** The state recorded at `path`, or undefined when there is none (or it is not ours). */
export async function readState(path: string): Promise<ExtractState | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const state = JSON.parse(text) as ExtractState;
    const valid =
      state.version === 1 &&
      Array.isArray(state.diffIds) &&
      state.diffIds.every((d) => typeof d === 'string') &&
      Number.isSafeInteger(state.applied) &&
      state.applied >= 0 &&
      state.applied <= state.diffIds.length &&
      typeof state.complete === 'boolean' &&
      // Stryker disable next-line ConditionalExpression: equivalent: a checkpoint that is not an object fails Array.isArray below or throws into the catch
      typeof state.checkpoint === 'object' &&
      // Stryker disable next-line ConditionalExpression: equivalent: the same, for null
      state.checkpoint !== null &&
      Array.isArray(state.checkpoint.directories) &&
      Array.isArray(state.checkpoint.skippedXattrs);
    return valid ? state : undefined;
  } catch {
    return undefined; // not ours, or torn by hand: start over
  }
}

/** Whether a recorded state is about exactly these layers. */
export function sameLayers(state: ExtractState, diffIds: readonly string[]): boolean {
  return state.diffIds.length === diffIds.length && state.diffIds.every((d, i) => d === diffIds[i]);
}

/** Replaces the state file atomically (a crash leaves the old one or the new one). */
export async function writeState(path: string, state: ExtractState): Promise<void> {
  const temporary = `${path}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temporary, JSON.stringify(state), { flag: 'wx' });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
