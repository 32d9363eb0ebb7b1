export { buildProgram } from './program.js';
export { describeFailure, UsageError } from './errors.js';
