import { UnknownTaskError } from './errors.js';

export type TaskGroup = 'natural' | 'specialized' | 'structured';

export interface TaskSpec {
  readonly name: string;
  readonly numClasses: number;
  readonly group: TaskGroup;
}

/** How a mini-suite task is made; documented per task in the README. */
export interface MiniTaskSpec extends TaskSpec {
  /** The VTAB-1k task it stands in for. */
  readonly models: string;
  /** `real`: real photographs/scans; `procedural`: rendered by this package from a seed. */
  readonly source: 'real' | 'procedural';
  /** Stored image side in pixels (images are square). */
  readonly storedSize: number;
  readonly storedChannels: 1 | 3;
  readonly labelMeaning: string;
}

/** The 19 VTAB-1k tasks, in the order of the VTAB paper. */
export const VTAB_1K_TASKS: readonly TaskSpec[] = [
  { name: 'caltech101', numClasses: 102, group: 'natural' },
  { name: 'cifar', numClasses: 100, group: 'natural' },
  { name: 'dtd', numClasses: 47, group: 'natural' },
  { name: 'oxford_flowers102', numClasses: 102, group: 'natural' },
  { name: 'oxford_iiit_pet', numClasses: 37, group: 'natural' },
  { name: 'svhn', numClasses: 10, group: 'natural' },
  { name: 'sun397', numClasses: 397, group: 'natural' },
  { name: 'patch_camelyon', numClasses: 2, group: 'specialized' },
  { name: 'eurosat', numClasses: 10, group: 'specialized' },
  { name: 'resisc45', numClasses: 45, group: 'specialized' },
  { name: 'diabetic_retinopathy', numClasses: 5, group: 'specialized' },
  { name: 'clevr_count', numClasses: 8, group: 'structured' },
  { name: 'clevr_dist', numClasses: 6, group: 'structured' },
  { name: 'dmlab', numClasses: 6, group: 'structured' },
  { name: 'kitti', numClasses: 4, group: 'structured' },
  { name: 'dsprites_loc', numClasses: 16, group: 'structured' },
  { name: 'dsprites_ori', numClasses: 16, group: 'structured' },
  { name: 'smallnorb_azi', numClasses: 18, group: 'structured' },
  { name: 'smallnorb_ele', numClasses: 9, group: 'structured' },
];

/**
 * The offline mini suite. The structured tasks deliberately reuse the VTAB-1k names (and class
 * counts) of the procedural VTAB tasks they re-create, so a loader keyed on the name works for both.
 */
export const MINI_SUITE_TASKS: readonly MiniTaskSpec[] = [
  {
    name: 'mnist', numClasses: 10, group: 'natural', models: 'svhn', source: 'real',
    storedSize: 28, storedChannels: 1, labelMeaning: 'the digit 0-9',
  },
  {
    name: 'textures', numClasses: 8, group: 'natural', models: 'dtd', source: 'procedural',
    storedSize: 64, storedChannels: 3,
    labelMeaning: 'texture family: stripes, checks, dots, waves, blobs, grid, zigzag, rings',
  },
  {
    name: 'lesion_grade', numClasses: 5, group: 'specialized', models: 'diabetic_retinopathy', source: 'procedural',
    storedSize: 64, storedChannels: 3, labelMeaning: 'grade 0-4 from the number of small lesions on a fundus-like disc',
  },
  {
    name: 'blob_patch', numClasses: 2, group: 'specialized', models: 'patch_camelyon', source: 'procedural',
    storedSize: 64, storedChannels: 3, labelMeaning: '1 if the tissue-like patch contains an irregular dark cluster',
  },
  {
    name: 'dsprites_loc', numClasses: 16, group: 'structured', models: 'dsprites_loc', source: 'procedural',
    storedSize: 64, storedChannels: 3, labelMeaning: 'sprite x position quantised into 16 bins',
  },
  {
    name: 'dsprites_ori', numClasses: 16, group: 'structured', models: 'dsprites_ori', source: 'procedural',
    storedSize: 64, storedChannels: 3, labelMeaning: 'sprite orientation in [0, 2π) quantised into 16 bins',
  },
  {
    name: 'clevr_count', numClasses: 8, group: 'structured', models: 'clevr_count', source: 'procedural',
    storedSize: 64, storedChannels: 3, labelMeaning: 'number of objects minus 3 (3-10 objects)',
  },
  {
    name: 'clevr_dist', numClasses: 6, group: 'structured', models: 'clevr_dist', source: 'procedural',
    storedSize: 64, storedChannels: 3, labelMeaning: 'depth of the closest object, 6 bins',
  },
];

export const MINI_SUITE_TASK_NAMES: readonly string[] = MINI_SUITE_TASKS.map((t) => t.name);
export const VTAB_1K_TASK_NAMES: readonly string[] = VTAB_1K_TASKS.map((t) => t.name);

const tasksByName = new Map<string, TaskSpec>();
for (const task of [...MINI_SUITE_TASKS, ...VTAB_1K_TASKS]) tasksByName.set(task.name, task);

/** True when `name` is a VTAB-1k or mini-suite task. */
export function isKnownTask(name: string): boolean {
  return tasksByName.has(name);
}

/** Looks a task up among the VTAB-1k and mini-suite tasks; throws UnknownTaskError otherwise. */
export function getTask(name: string): TaskSpec {
  const task = tasksByName.get(name);
  if (!task) throw new UnknownTaskError(name, `; known tasks: ${[...tasksByName.keys()].join(', ')}`);
  return task;
}

/** Looks a task up among the mini-suite tasks only. */
export function getMiniTask(name: string): MiniTaskSpec {
  const task = MINI_SUITE_TASKS.find((t) => t.name === name);
  if (!task) throw new UnknownTaskError(name, `; mini-suite tasks: ${MINI_SUITE_TASK_NAMES.join(', ')}`);
  return task;
}
