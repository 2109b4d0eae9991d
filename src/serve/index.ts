// The HTTP server of trained models (engram serve): not re-exported from the library's index so
// that importing engram does not load fastify; `import { startServer } from 'engram/serve'`.
export * from './server.js';
export * from './http-error.js';
export { SessionStore, type Session } from './sessions.js';
export { ModelQueue } from './queue.js';
export type * from './types.js';
