// Optimisers, gradient clipping and learning-rate schedules.
export * from './optimizers.js';
export * from './schedules.js';
