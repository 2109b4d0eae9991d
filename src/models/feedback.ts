// PLACEHOLDER (being written): the feedback model.
import { EngramError } from '../tensor/index.js';
import { SequentialTransformer } from './sequential.js';
import type { ModelConfig } from './types.js';

export class FeedbackTransformer extends SequentialTransformer {
  constructor(config: ModelConfig) {
    super(config);
    throw new EngramError("model kind 'feedback' is not implemented yet", 'config');
  }
}
