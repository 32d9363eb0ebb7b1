import { UsageError } from '../errors.js';
import { head2toeMethod } from './head2toe.js';
import { linearMethod } from './linear.js';
import type { Method } from './types.js';
import { vqtMethod } from './vqt.js';

export const METHODS = ['vqt', 'head2toe', 'linear'] as const;
export type MethodName = (typeof METHODS)[number];

export function createMethod(name: string): Method {
  if (name === 'vqt') return vqtMethod();
  if (name === 'head2toe') return head2toeMethod();
  if (name === 'linear') return linearMethod();
  throw new UsageError(`unknown method "${name}"; use one of ${METHODS.join(', ')}`);
}

export type { Method, MethodOptions, TrainedMethod, FitContext } from './types.js';
