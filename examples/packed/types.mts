// Type-checked as an ES module: each package's types resolve through its "import" condition.
import type { FittedMethod, Hook, LoadedVit, MethodSpec } from '@vqt/core';
import { fitMethod, loadVit, openFitted, predict, saveFitted } from '@vqt/core';
import { VqtModel, vqtMethod, type VqtMethodConfig } from '@vqt/vqt';
import { head2toeMethod } from '@vqt/head2toe';
import { groupLassoSelect } from '@vqt/group-lasso';
import { embeddedBackbone, openSplit } from '@vqt/vtab-datasets';
import { buildProgram } from '@vqt/cli';

const backbone: LoadedVit = loadVit(embeddedBackbone().file);
const spec: MethodSpec<VqtMethodConfig> = vqtMethod;
const hook: Hook = { name: 'mine', trainableVariables: () => [] };
const model = new VqtModel(backbone.model, { numClasses: 3, baseHooks: [hook] });
export const used: unknown[] = [spec, head2toeMethod, model, fitMethod, openFitted, predict, saveFitted, groupLassoSelect, openSplit, buildProgram];
export type Fitted = FittedMethod;
