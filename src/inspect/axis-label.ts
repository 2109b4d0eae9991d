// What a row or column of an attention map is. A file of its own, free of imports, so that the
// viewer's page (src/serve/viewer/page) reads the same type without the library.
/** Where a row or column of an attention map comes from. */
export interface AxisLabel {
  /**
   * memory: a kept past position (the stream position when known); compressed: a compressed
   * memory slot; read / write: memory tokens before / after the segment (RMT, Memory
   * Transformer); slot: a bottleneck slot; segment: a token of the segment.
   */
  part: 'memory' | 'compressed' | 'read' | 'write' | 'slot' | 'segment';
  /** Stream position of the token it holds, or null for slots. */
  position: number | null;
}
