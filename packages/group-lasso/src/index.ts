export { validateLabels, oneHotTargets, logClassPriors } from './labels.js';
export { applyHead, headAccuracy, cloneHead, disposeHead, type LinearHead } from './params.js';
export { groupNorms, groupSoftThreshold } from './prox.js';
export { smoothLoss, smoothLossAndGradient, hostSum, type SoftmaxProblem, type SmoothGradient } from './smooth-loss.js';
export { estimateLipschitz } from './step-size.js';
export { solveProximalGradient, type SolverOptions, type SolverResult, type ProblemSettings } from './fista.js';
export { LAMBDA_MAX_SLACK, gradientSummary, lambdaMaxFrom, type GradientSummary } from './lambda-max.js';
export {
  trainGroupLassoHead,
  trainLinearHead,
  groupLassoLambdaMax,
  type GroupLassoOptions,
  type GroupLassoHead,
  type LinearHeadOptions,
  type TrainedLinearHead,
} from './train.js';
export { groupLassoPath, geometricLambdas, type LambdaPathOptions, type LambdaPathPoint, type LambdaPath } from './path.js';
export { rankFeatures, selectFeatures, keepCount, gatherColumns } from './select.js';
export { groupLassoSelect, type GroupLassoSelectOptions, type GroupLassoSelection } from './group-lasso-select.js';
