// The memory viewer's routes, mounted by the server (registerViewer):
//   GET  /                      the page (dist/viewer/index.html, built by scripts/build-viewer.mjs)
//   GET  /viewer/<asset>        its bundled script and style (nothing is fetched from elsewhere)
//   GET  /viewer/models         the served models as the page lists them
//   POST /v1/inspect            { model, text | tokens, topK?, attention? } -> NDJSON, one
//                               TraceRecord a line (src/infer/trace.ts) as the text streams through
// The tracing itself is src/infer/trace.ts; this file checks requests and streams the records.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { FastifyReply } from 'fastify';
import { encodeInput, trace } from '../../infer/trace.js';
import type { RegisterViewer, ServedModel } from '../types.js';

/** dist/viewer, beside dist/src (this file is dist/src/serve/viewer/routes.js once built). */
const assetDir = fileURLToPath(new URL('../../../viewer/', import.meta.url));
const assets: Record<string, string> = { 'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8', 'app.css': 'text/css; charset=utf-8' };

export const InspectRequest = z.object({
  model: z.string().min(1),
  text: z.string().min(1).optional(),
  tokens: z.array(z.number().int().nonnegative()).min(1).optional(),
  topK: z.number().int().min(1).max(50).default(5),
  attention: z.enum(['heads', 'mean', 'none']).default('mean'),
}).strict().refine((b) => (b.text === undefined) !== (b.tokens === undefined), { message: 'give exactly one of text and tokens', path: ['text'] });

/** The error body every route of the viewer answers with. */
const fail = (reply: FastifyReply, status: number, type: string, message: string) => reply.code(status).send({ error: { type, message } });

export const registerViewer: RegisterViewer = (app, context) => {
  const sendAsset = async (name: string, reply: FastifyReply) => {
    let body: Buffer;
    try {
      body = await readFile(assetDir + name);
    } catch {
      return fail(reply, 503, 'not_built', `the viewer's ${name} is missing from ${assetDir}; build it with npm run build`);
    }
    return reply.type(assets[name]!).header('cache-control', 'no-cache').send(body);
  };
  app.get('/', (_, reply) => sendAsset('index.html', reply));
  app.get<{ Params: { asset: string } }>('/viewer/:asset', (req, reply) =>
    Object.hasOwn(assets, req.params.asset) && req.params.asset !== 'index.html' ? sendAsset(req.params.asset, reply) : fail(reply, 404, 'not_found', `no viewer asset ${req.params.asset}`));

  app.get('/viewer/models', () => ({
    models: [...context.models.values()].map((m) => ({
      name: m.name, kind: m.run.model.config.kind, segmentLength: m.segmentLength,
      input: m.run.kind === 'lm' ? 'text' : 'ids', vocabSize: m.run.model.config.vocabSize,
    })),
  }));

  app.post('/v1/inspect', async (req, reply) => {
    const parsed = InspectRequest.safeParse(req.body ?? {});
    if (!parsed.success) {
      const message = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
      return fail(reply, 400, 'invalid_request', message);
    }
    const body = parsed.data;
    const served: ServedModel | undefined = context.models.get(body.model);
    if (!served) return fail(reply, 404, 'model_not_found', `model: no served model "${body.model}" (served: ${[...context.models.keys()].join(', ') || 'none'})`);
    try {
      encodeInput(served.run, body); // a bad input is a 400 before the stream starts
    } catch (e) {
      return fail(reply, 400, 'invalid_request', `${body.text !== undefined ? 'text' : 'tokens'}: ${(e as Error).message}`);
    }
    const out = new PassThrough();
    let aborted = false;
    reply.raw.on('close', () => { if (!reply.raw.writableFinished) aborted = true; });
    let started!: () => void;
    const start = new Promise<void>((resolve) => { started = resolve; });
    const done = served.exclusive(async () => {
      started();
      try {
        for await (const record of trace(served.run, { ...body, segmentLength: served.segmentLength })) {
          if (aborted) break;
          if (!out.write(`${JSON.stringify(record)}\n`)) await once(out, 'drain');
        }
      } catch (e) {
        out.write(`${JSON.stringify({ type: 'error', message: (e as Error).message })}\n`);
      } finally {
        out.end();
      }
    });
    await Promise.race([start, done]); // a full queue rejects before the stream starts
    done.catch((e: unknown) => req.log.error(e));
    return reply.type('application/x-ndjson; charset=utf-8').header('cache-control', 'no-cache').send(out);
  });
};
