// PLACEHOLDER (being written): the expire-span model.
import { EngramError } from '../tensor/index.js';
import { SequentialTransformer } from './sequential.js';
import type { ModelConfig } from './types.js';

export class ExpireSpanTransformer extends SequentialTransformer {
  constructor(config: ModelConfig) {
    super(config);
    throw new EngramError("model kind 'expire-span' is not implemented yet", 'config');
  }
}
