// PLACEHOLDER (being written): the compressive model.
import { EngramError } from '../tensor/index.js';
import { SequentialTransformer } from './sequential.js';
import type { ModelConfig } from './types.js';

export class CompressiveTransformer extends SequentialTransformer {
  constructor(config: ModelConfig) {
    super(config);
    throw new EngramError("model kind 'compressive' is not implemented yet", 'config');
  }
}
