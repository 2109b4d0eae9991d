// The memory viewer's routes (its page, its assets, POST /v1/inspect), mounted by the server.
// Placeholder while the viewer is written: mounts nothing.
import type { RegisterViewer } from '../types.js';

export const registerViewer: RegisterViewer = () => {};
