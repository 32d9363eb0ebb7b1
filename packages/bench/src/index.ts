export {
  EMBEDDED_CHECKPOINT,
  cellId,
  cellKey,
  methodAvailable,
  parseMethodRequest,
  splitMethodList,
  type MethodRequest,
  planBench,
  settingsKey,
  type BenchCell,
  type BenchData,
  type BenchPlan,
  type BenchSettings,
  type BenchVariant,
  type PlanRequest,
} from './plan.js';
export { checkpointFile, releaseBackbones, runCell, taskDirectory, type CellEnvironment, type CellResult } from './cell.js';
export { ResultsFolder } from './store.js';
export { runCellsInPool, serveIpcWorker, type PoolOptions, type PoolReply, type PoolRequest } from './pool.js';
export {
  DEFAULT_QUEUE_NAME,
  jobIdOf,
  redisConnection,
  runCellsOnQueue,
  startQueueWorker,
  type CellJobData,
  type QueueCoordinatorOptions,
  type QueueWorkerOptions,
} from './queue.js';
export {
  accuracyTable,
  checkMarkdown,
  checkResults,
  groupOf,
  markdownTable,
  meanOver,
  memoryTable,
  stat,
  summarizeVariants,
  type BenchCheck,
  type BenchResults,
  type CheckLine,
  type EnvironmentInfo,
  type Group,
  type Stat,
  type VariantSummary,
} from './report.js';
export {
  accuracyMemoryPoints,
  accuracyMemorySpec,
  accuracyQueriesPoints,
  accuracyQueriesSpec,
  renderChart,
  type ChartPoint,
  type RenderedChart,
} from './plot.js';
export {
  BenchProgress,
  formatDuration,
  packageVersions,
  replaceReadmeSection,
  runBench,
  summaryMarkdown,
  writeReport,
  type BenchRunOptions,
  type BenchRunOutcome,
  type Execution,
} from './suite.js';
