// engram serve: trained models over HTTP (fastify), bound to 127.0.0.1 unless told otherwise.
//
//   GET    /v1/models         the served models and the server's limits
//   POST   /v1/generate       { model, prompt, maxTokens, temperature, topK, topP, stop, seed, stream, session }
//                             -> { text, finishReason, ... }; "stream": true -> server-sent events:
//                             `event: token` per token, then `event: done` with the summary
//   POST   /v1/score          { model, text, chunkSize, session } -> bits per token, per chunk and in all
//   GET    /v1/sessions       open sessions;  DELETE /v1/sessions/:id closes one
//   POST   /v1/inspect, GET / the memory viewer (./viewer/, mounted through registerViewer)
//
// Sessions: a request naming a `session` id runs on that session's memory (made on first use, for
// the model of that request), so a client feeds a long document piece by piece; they expire after
// --session-ttl unused, and at --max-sessions the least recently used idle one is closed.
// Requests run one at a time per model (ModelQueue; ServedModel.exclusive), --queue may wait, more
// get 429. Every request has a time limit (--timeout): a generation then ends early with
// finishReason 'timeout'; anything else answers 408. Every bad request is a 4xx JSON error
// { error: { field, message } } naming the field. close() stops accepting, lets in-flight requests
// finish for the grace period, then cuts the generations short (finishReason 'shutdown').
import { basename, resolve } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { loadRun, type LoadedRun } from '../train/objective.js';
import { EngramError, configError, ioError } from '../tensor/errors.js';
import type { DeviceSpec } from '../tensor/device.js';
import type { Precision } from '../tensor/precision.js';
import { generate, score, textModel, type GenerateSummary, type TextModel } from '../infer/stream.js';
import { HttpError, stoppedError, type StopReason } from './http-error.js';
import { ModelQueue } from './queue.js';
import { SessionStore, type Session } from './sessions.js';
import type { RegisterViewer, ServeContext, ServedModel } from './types.js';
import { registerViewer as defaultViewer } from './viewer/routes.js';

export interface ServeLimits {
  /** Requests that may wait for a busy model (default 8); more get 429. */
  queue: number;
  /** Sessions open at once (default 64). */
  maxSessions: number;
  /** Milliseconds a session lives unused (default 10 minutes). */
  sessionTtlMs: number;
  /** Milliseconds a request may take, waiting included (default 60 s). */
  timeoutMs: number;
  /** Tokens one generation may ask for (default 1024). */
  maxTokens: number;
  /** Characters of a prompt (default 65536). */
  maxPromptChars: number;
  /** Bytes of a request body (default 1 MiB). */
  bodyLimit: number;
  /** Milliseconds close() lets in-flight requests finish before cutting them short (default 5 s). */
  graceMs: number;
}

export const defaultLimits: ServeLimits = {
  queue: 8, maxSessions: 64, sessionTtlMs: 10 * 60_000, timeoutMs: 60_000, maxTokens: 1024, maxPromptChars: 65_536, bodyLimit: 1 << 20, graceMs: 5_000,
};

export interface ServeOptions extends Partial<ServeLimits> {
  /** Model folders or run directories (loaded, and disposed on close), or loaded runs (the caller's). */
  models: (string | LoadedRun)[];
  /** Interface to listen on (default 127.0.0.1: this machine only). */
  host?: string;
  /** Port (default 8080; 0: any free one). */
  port?: number;
  /** Mounts the memory viewer (default: ./viewer/routes.ts). */
  registerViewer?: RegisterViewer;
  /** Where the models given as folders run ('cpu', 'cuda', 'cuda:N', 'auto'; default 'cpu'). */
  device?: DeviceSpec;
  /** How the models given as paths run: 'float32' (default) or 'bf16' (loadRun's precision). */
  precision?: Precision;
}

export interface EngramServer {
  readonly app: FastifyInstance;
  readonly context: ServeContext;
  readonly limits: ServeLimits;
  /** http://host:port once listening (startServer). */
  url: string;
  /** Stops accepting, finishes or cuts short in-flight requests within the grace period, frees the models. */
  close(): Promise<void>;
}

// ---- request bodies ------------------------------------------------------------------------------------

const sessionId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'a session id is 1 to 128 letters, digits or _ . : -');

function schemas(l: ServeLimits) {
  const generateBody = z.strictObject({
    model: z.string().optional(),
    prompt: z.string().max(l.maxPromptChars, `at most ${l.maxPromptChars} characters (the server's --max-prompt)`).default(''),
    maxTokens: z.number().int().min(0).max(l.maxTokens, `at most ${l.maxTokens} (the server's --max-tokens)`).default(Math.min(200, l.maxTokens)),
    temperature: z.number().min(0).max(100).default(0.8),
    topK: z.number().int().min(0).default(0),
    topP: z.number().gt(0).max(1).default(1),
    stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).default([]),
    seed: z.number().int().min(-(2 ** 53 - 1)).max(2 ** 53 - 1).default(0),
    stream: z.boolean().default(false),
    session: sessionId.optional(),
  });
  const scoreBody = z.strictObject({
    model: z.string().optional(),
    text: z.string(),
    chunkSize: z.number().int().min(1).max(1 << 20).default(4096),
    session: sessionId.optional(),
  });
  return { generateBody, scoreBody };
}

/** The body as schema reads it, or a 400 naming the first field at fault. */
function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') throw new HttpError(400, issue.keys[0]!, `unknown field ${JSON.stringify(issue.keys[0])}`);
  const field = issue.path.length > 0 ? issue.path.join('.') : 'body';
  throw new HttpError(400, field, field === 'body' ? `the body must be a JSON object (${issue.message})` : `${field}: ${issue.message}`);
}

// ---- the server ----------------------------------------------------------------------------------------

interface Served extends ServedModel {
  readonly queue: ModelQueue;
}

/** Folder names as model names, made unique with -2, -3... */
function uniqueName(run: LoadedRun, taken: Set<string>): string {
  const base = basename(resolve(run.dir)) || 'model';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

/** The app with its routes, not listening yet (app.inject works; startServer listens). */
export async function createServer(options: ServeOptions): Promise<EngramServer> {
  const limits: ServeLimits = { ...defaultLimits };
  for (const k of Object.keys(defaultLimits) as (keyof ServeLimits)[]) if (options[k] !== undefined) limits[k] = options[k];
  if (options.models.length === 0) throw configError('serve', 'give at least one model folder or run directory');
  const owned: LoadedRun[] = [];
  const models = new Map<string, Served>();
  const taken = new Set<string>();
  try {
    for (const m of options.models) {
      const run = typeof m === 'string' ? await loadRun(m, { device: options.device ?? 'cpu', precision: options.precision ?? 'float32' }) : m;
      if (typeof m === 'string') owned.push(run);
      const name = uniqueName(run, taken);
      const queue = new ModelQueue(name, limits.queue);
      models.set(name, { name, run, segmentLength: run.objective.segmentLength, queue, exclusive: (fn) => queue.run(fn) });
    }
  } catch (e) {
    owned.forEach((r) => r.model.dispose());
    throw e;
  }
  const context: ServeContext = { models };
  const sessions = new SessionStore(limits.maxSessions, limits.sessionTtlMs);
  const { generateBody, scoreBody } = schemas(limits);
  /** In-flight requests' controllers: aborted ('shutdown') when the grace period ends. */
  const inFlight = new Set<AbortController>();
  let closing = false;

  const app = Fastify({ bodyLimit: limits.bodyLimit, logger: false, return503OnClosing: true });

  app.setErrorHandler((e: Error & { code?: string; statusCode?: number }, _request, reply) => {
    if (e instanceof HttpError) return reply.code(e.status).send(e.toJSON());
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(new HttpError(413, 'body', `the body is larger than the server's limit of ${limits.bodyLimit} bytes (--body-limit); send the text in pieces on a session`).toJSON());
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.code(415).send(new HttpError(415, 'content-type', 'send the body as JSON (content-type: application/json)').toJSON());
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) return reply.code(e.statusCode).send(new HttpError(e.statusCode, 'body', `the body is not valid JSON: ${e.message}`).toJSON());
    if (e instanceof EngramError && e.kind === 'config') return reply.code(400).send(new HttpError(400, null, e.message).toJSON());
    return reply.code(500).send(new HttpError(500, null, `internal error: ${e.message}`).toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(new HttpError(404, 'url', `no route ${request.method} ${request.url}; the API is GET /v1/models, POST /v1/generate, /v1/score, /v1/inspect`).toJSON());
  });

  /** The served model a body names (or the only one). */
  function modelOf(name: string | undefined): Served {
    if (name === undefined) {
      if (models.size === 1) return [...models.values()][0]!;
      throw new HttpError(400, 'model', `name the model: one of ${[...models.keys()].join(', ')}`);
    }
    const m = models.get(name);
    if (!m) throw new HttpError(404, 'model', `no model named ${JSON.stringify(name)}; GET /v1/models lists them (${[...models.keys()].join(', ')})`);
    return m;
  }

  function textOf(m: Served): TextModel {
    if (m.run.kind !== 'lm') throw new HttpError(400, 'model', `${m.name} is a task model; text generation and scoring need a language model`);
    return textModel(m.run);
  }

  /**
   * Runs work on model m's queue with the request's signal: aborted at the time limit, at the end of
   * the shutdown grace period, or when the client goes away.
   */
  async function onModel<T>(m: Served, reply: FastifyReply, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (closing) throw stoppedError('shutdown', 'the request');
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort('timeout' satisfies StopReason), limits.timeoutMs);
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort('disconnect' satisfies StopReason);
    };
    reply.raw.on('close', onClose);
    inFlight.add(controller);
    try {
      return await m.queue.run(() => work(controller.signal), controller.signal);
    } finally {
      clearTimeout(timer);
      inFlight.delete(controller);
      reply.raw.off('close', onClose);
    }
  }

  /** Runs fn on the body's session (if any), made for model m on first use. */
  async function withSession<T>(id: string | undefined, m: Served, text: TextModel, fn: (s: Session | null) => Promise<T>): Promise<T> {
    const s = id === undefined ? null : sessions.open(id, m.name, text);
    try {
      return await fn(s);
    } finally {
      if (s) sessions.release(s);
    }
  }

  const sessionInfo = (s: Session | null) => s && { id: s.id, position: s.text.position };

  app.get('/v1/models', async () => ({
    models: [...models.values()].map((m) => ({
      name: m.name,
      kind: m.run.kind === 'lm' ? 'language-model' : 'task',
      ...(m.run.kind === 'task' ? { task: m.run.config.data.kind === 'task' ? m.run.config.data.name : null } : {}),
      model: m.run.model.config.kind,
      parameters: m.run.model.numParameters(),
      step: m.run.step,
      segmentLength: m.segmentLength,
      vocabSize: m.run.model.config.vocabSize,
      busy: m.queue.busy,
      waiting: m.queue.waiting,
    })),
    limits,
  }));

  app.get('/v1/sessions', async () => ({
    sessions: sessions.list().map((s) => ({ id: s.id, model: s.model, position: s.text.position, idleMs: Date.now() - s.lastUsed })),
  }));

  app.delete('/v1/sessions/:id', async (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    if (!sessions.close(request.params.id)) throw new HttpError(404, 'session', `no session ${JSON.stringify(request.params.id)} (it may have expired)`);
    return reply.code(204).send();
  });

  app.post('/v1/generate', async (request, reply) => {
    const body = parseBody(generateBody, request.body);
    const m = modelOf(body.model);
    const text = textOf(m);
    const stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
    return onModel(m, reply, (signal) => withSession(body.session, m, text, async (session) => {
      const { maxTokens, temperature, topK, topP, seed } = body;
      const tokens = generate(text, body.prompt, { maxTokens, temperature, topK, topP, seed, stop, signal, ...(session ? { session: session.text } : {}) });
      const result = (r: GenerateSummary) => ({
        model: m.name, ...r, finishReason: r.finishReason === 'abort' ? (signal.reason as StopReason) : r.finishReason,
        ...(session ? { session: sessionInfo(session) } : {}),
      });
      if (!body.stream) {
        for (;;) {
          const r = await tokens.next();
          if (r.done) return result(r.value);
        }
      }
      // server-sent events: one per token, then the summary (or the error that ended the stream)
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      try {
        for (;;) {
          const r = await tokens.next();
          if (r.done) {
            send('done', result(r.value));
            break;
          }
          send('token', r.value);
        }
      } catch (e) {
        send('error', e instanceof HttpError ? e.toJSON() : new HttpError(500, null, (e as Error).message).toJSON());
      }
      res.end();
      return undefined;
    }));
  });

  app.post('/v1/score', async (request, reply) => {
    const body = parseBody(scoreBody, request.body);
    const m = modelOf(body.model);
    const text = textOf(m);
    return onModel(m, reply, (signal) => withSession(body.session, m, text, async (session) => {
      const chunks = [];
      let characters = 0, tokens = 0, bits = 0, unknown = 0;
      for await (const c of score(text, body.text, { chunkSize: body.chunkSize, signal, ...(session ? { session: session.text } : {}) })) {
        chunks.push({ characters: c.characters, tokens: c.tokens, bits: c.bits, bitsPerToken: c.bitsPerToken });
        characters += c.characters;
        tokens += c.tokens;
        bits += c.bits;
        unknown += c.unknown;
      }
      if (signal.aborted) {
        // a session scored in part is of no use: close it rather than keep half a piece
        if (session) sessions.close(session.id);
        throw stoppedError(signal.reason as StopReason, `scoring${session ? ` (session ${session.id} was closed)` : ''}`);
      }
      if (session) {
        session.tokens += tokens;
        session.bits += bits;
      }
      return {
        model: m.name, characters, tokens, bits, bitsPerToken: bits / tokens, unknown, chunks,
        ...(session ? { session: { ...sessionInfo(session), tokens: session.tokens, bitsPerToken: session.bits / session.tokens } } : {}),
      };
    }));
  });

  await (options.registerViewer ?? defaultViewer)(app, context);

  const server: EngramServer = {
    app, context, limits, url: '',
    async close() {
      if (closing) return;
      closing = true;
      const grace = setTimeout(() => inFlight.forEach((c) => c.abort('shutdown' satisfies StopReason)), limits.graceMs);
      try {
        await app.close();
      } finally {
        clearTimeout(grace);
        sessions.dispose();
        owned.forEach((r) => r.model.dispose());
      }
    },
  };
  return server;
}

/** createServer, listening on host:port (default 127.0.0.1:8080); url says where. */
export async function startServer(options: ServeOptions): Promise<EngramServer> {
  const server = await createServer(options);
  try {
    await server.app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
  } catch (e) {
    await server.close();
    throw ioError('serve', `cannot listen on ${options.host ?? '127.0.0.1'}:${options.port ?? 8080}: ${(e as Error).message}`, e);
  }
  const address = server.app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host ?? '127.0.0.1';
  server.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return server;
}
