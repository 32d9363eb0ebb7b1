import { MINI_SUITE_TASK_NAMES } from '../registry.js';
import { UnknownTaskError } from '../errors.js';
import { blobPatchTask } from './blob-patch.js';
import { clevrCountTask, clevrDistTask } from './clevr.js';
import { dspritesLocTask, dspritesOriTask } from './dsprites.js';
import { lesionGradeTask } from './lesion-grade.js';
import { mnistTask } from './mnist.js';
import type { TaskGenerator } from './task.js';
import { texturesTask } from './textures.js';

const GENERATORS: readonly TaskGenerator[] = [
  mnistTask,
  texturesTask,
  lesionGradeTask,
  blobPatchTask,
  dspritesLocTask,
  dspritesOriTask,
  clevrCountTask,
  clevrDistTask,
];

export function taskGenerator(name: string): TaskGenerator {
  const generator = GENERATORS.find((g) => g.spec.name === name);
  if (!generator) throw new UnknownTaskError(name, `; mini-suite tasks: ${MINI_SUITE_TASK_NAMES.join(', ')}`);
  return generator;
}
