// PLACEHOLDER (being written): the adaptive-span model.
import { EngramError } from '../tensor/index.js';
import { SequentialTransformer } from './sequential.js';
import type { ModelConfig } from './types.js';

export class AdaptiveSpanTransformer extends SequentialTransformer {
  constructor(config: ModelConfig) {
    super(config);
    throw new EngramError("model kind 'adaptive-span' is not implemented yet", 'config');
  }
}
