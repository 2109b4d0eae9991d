// The tensor layer: everything above it is written against these exports only.
export { Tensor, type Scalar, type Device, type NestedArray, type CreateOptions } from './tensor.js';
export * from './creation.js';
export * as F from './functional.js';
export type { ExpiringKeysInput, PositionScores, RowBlocks } from './functional.js';
export { noGrad, enableGrad, isGradEnabled, grad, type GradOptions } from './autograd.js';
export { tidy, keep, liveTensors } from './scope.js';
export { EngramError, engramError, configError, shapeError, dtypeError, ioError, numericError, disposedError, type ErrorKind } from './errors.js';
export { checkShape } from './check.js';
export { type DType, type TypedArray, isFloating } from './dtype.js';
export * from './runtime.js';
export { resolveDevice, sameDevice, deviceCheckMode, isDeviceSpec, setNativeKernels, nativeKernelsOn, DEVICE_SPECS, type DeviceSpec } from './device.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck.js';
export { saveSafetensors, loadSafetensors, toSafetensorsBytes, fromSafetensorsBytes, readSafetensorsHeader, saveTorch, loadTorch, type LoadOptions, type SafetensorsHeader } from './serialize.js';
export { createGroup, destroyGroup, allReduceInPlace, broadcastInPlace, allGather, barrier, allReduceGradients, collectiveBackends, createGradientReducer, reducerBegin, reducerFinish, destroyGradientReducer, type CollectiveBackend, type GroupOptions } from './collectives.js';
export { withPrecision, autocastDeviceOf, checkPrecision, precisionProblem, autocastState, widenReduced, precisions, type Precision, type AutocastDevice } from './precision.js';
export { StepBuffer } from './step-buffer.js';
export { profile, profileAsync, formatProfile, type ProfileOptions, type ProfileRow } from './profiler.js';
