// Data-parallel training over c10d (see docs and README "Distributed training"): the process
// group, the torchrun-style environment, and the launcher of local workers.
export { ProcessGroup, DEFAULT_BUCKET_BYTES, DEFAULT_TIMEOUT_SECONDS, type ProcessGroupOptions } from './process-group.js';
export { distEnvFrom, workerEnv, DEFAULT_MASTER_PORT, type DistEnv } from './env.js';
export { launch, freePort, type LaunchOptions, type LaunchResult, type WorkerExit } from './launch.js';
