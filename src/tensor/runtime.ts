// Process-wide settings of the engine: threads, devices, build facts.
import { native } from './native.js';

/** Whether libtorch was built with CUDA and a GPU is visible. */
export const cudaAvailable = (): boolean => native.cudaAvailable();
export const cudaDeviceCount = (): number => native.cudaDeviceCount();
/** Waits for queued CUDA work (for timing). */
export const cudaSynchronize = (): void => native.cudaSynchronize();

/** ATen's intra-op thread count (OpenBLAS keeps its own pool: OPENBLAS_NUM_THREADS). */
export const setNumThreads = (n: number): void => native.setNumThreads(n);
export const getNumThreads = (): number => native.getNumThreads();

export const buildInfo = (): { torchVersion: string; parallelInfo: string; cxx11Abi: number } => native.buildInfo();
