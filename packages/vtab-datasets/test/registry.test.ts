import { describe, expect, it } from 'vitest';
import {
  getMiniTask,
  getTask,
  isKnownTask,
  MINI_SUITE_TASKS,
  UnknownTaskError,
  VTAB_1K_TASKS,
  VtabDataError,
} from '../src/index.js';

describe('task registry', () => {
  it('lists the 19 VTAB-1k tasks with METHOD.md class counts and groups', () => {
    const table = Object.fromEntries(VTAB_1K_TASKS.map((t) => [t.name, `${t.group}:${t.numClasses}`]));
    expect(table).toEqual({
      caltech101: 'natural:102',
      cifar: 'natural:100',
      dtd: 'natural:47',
      oxford_flowers102: 'natural:102',
      oxford_iiit_pet: 'natural:37',
      svhn: 'natural:10',
      sun397: 'natural:397',
      patch_camelyon: 'specialized:2',
      eurosat: 'specialized:10',
      resisc45: 'specialized:45',
      diabetic_retinopathy: 'specialized:5',
      clevr_count: 'structured:8',
      clevr_dist: 'structured:6',
      dmlab: 'structured:6',
      kitti: 'structured:4',
      dsprites_loc: 'structured:16',
      dsprites_ori: 'structured:16',
      smallnorb_azi: 'structured:18',
      smallnorb_ele: 'structured:9',
    });
    expect(VTAB_1K_TASKS).toHaveLength(19);
  });

  it('has mini-suite tasks in all three groups, each modelling a VTAB-1k task', () => {
    const groups = new Set(MINI_SUITE_TASKS.map((t) => t.group));
    expect(groups).toEqual(new Set(['natural', 'specialized', 'structured']));
    for (const task of MINI_SUITE_TASKS) {
      expect(isKnownTask(task.models)).toBe(true);
      expect(getTask(task.name).numClasses).toBe(task.numClasses);
    }
    expect(MINI_SUITE_TASKS.map((t) => t.name)).not.toContain('fashion_mnist');
  });

  it('gives mini tasks that reuse a VTAB-1k name the same class count and group', () => {
    for (const mini of MINI_SUITE_TASKS) {
      const vtab = VTAB_1K_TASKS.find((t) => t.name === mini.name);
      if (vtab) expect([mini.numClasses, mini.group]).toEqual([vtab.numClasses, vtab.group]);
    }
  });

  it('rejects an unknown task with a one-line error listing the known ones', () => {
    expect(() => getTask('cifar10')).toThrow(UnknownTaskError);
    try {
      getTask('cifar10');
    } catch (error) {
      expect(error).toBeInstanceOf(VtabDataError);
      expect((error as Error).message).toMatch(/^unknown task "cifar10"; known tasks: .*caltech101/);
      expect((error as Error).message).not.toContain('\n');
    }
    expect(() => getMiniTask('dtd')).toThrow(/unknown task "dtd"; mini-suite tasks: mnist/);
  });
});
