// Type-checked as CommonJS: each package's types resolve through its "require" condition.
import core = require('@vqt/core');
import vqt = require('@vqt/vqt');
import head2toe = require('@vqt/head2toe');
import groupLasso = require('@vqt/group-lasso');
import datasets = require('@vqt/vtab-datasets');
import cli = require('@vqt/cli');

const backbone: core.LoadedVit = core.loadVit(datasets.embeddedBackbone().file);
const model: vqt.VqtModel = new vqt.VqtModel(backbone.model, { numClasses: 3 });
export const used: unknown[] = [model, head2toe.head2toeMethod, groupLasso.groupLassoSelect, cli.buildProgram, core.fitMethod];
