import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodePng } from './png.js';
import { STORED_SPLITS, type SplitCounts, type StoredSplit } from './task.js';
import { taskGenerator } from './tasks.js';

/** Bumped whenever generated images change; part of the cache directory name. */
export const MINI_SUITE_VERSION = 1;

/**
 * Writes one task into `dir` in the VTAB-1k layout. info.json is written last, so its presence
 * marks a complete task.
 */
export async function writeTask(dir: string, task: string, seed: number, counts: SplitCounts): Promise<void> {
  const generator = taskGenerator(task);
  const lists: Record<StoredSplit, string[]> = { train800: [], val200: [], test: [] };
  for (const split of STORED_SPLITS) {
    const imageDir = join(dir, 'images', split);
    await mkdir(imageDir, { recursive: true });
    const digits = String(counts[split] - 1).length;
    let index = 0;
    let pendingWrites: Promise<void>[] = [];
    for (const { label, image } of generator.examples(seed, split, counts[split])) {
      const name = `${String(index).padStart(Math.max(digits, 4), '0')}.png`;
      pendingWrites.push(writeFile(join(imageDir, name), encodePng(image.data, image.width, image.height, image.channels)));
      lists[split].push(`images/${split}/${name} ${label}`);
      index++;
      // bounded write-behind: keeps the disk busy while the next images render
      if (pendingWrites.length >= 64) {
        await Promise.all(pendingWrites);
        pendingWrites = [];
      }
    }
    await Promise.all(pendingWrites);
  }
  const listText = (lines: string[]): string => `${lines.join('\n')}\n`;
  await writeFile(join(dir, 'train800.txt'), listText(lists.train800));
  await writeFile(join(dir, 'val200.txt'), listText(lists.val200));
  await writeFile(join(dir, 'train800val200.txt'), listText([...lists.train800, ...lists.val200]));
  await writeFile(join(dir, 'test.txt'), listText(lists.test));
  const spec = generator.spec;
  const info = {
    task,
    group: spec.group,
    numClasses: spec.numClasses,
    models: spec.models,
    source: spec.source,
    labelMeaning: spec.labelMeaning,
    seed,
    counts: { ...counts, train800val200: counts.train800 + counts.val200 },
    generatorVersion: MINI_SUITE_VERSION,
  };
  await writeFile(join(dir, 'info.json'), `${JSON.stringify(info, null, 2)}\n`);
}
