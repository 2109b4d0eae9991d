export * from './inspect.js';
export * from './plots.js';
export * from './report.js';
