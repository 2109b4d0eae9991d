// Optimisers, gradient clipping, weight-decay parameter groups and learning-rate schedules.
export * from './optimizers.js';
export * from './param-groups.js';
export * from './schedules.js';
