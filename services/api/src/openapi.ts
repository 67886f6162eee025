import { z } from 'zod';
import {
  AssetView, DatasetSummary, DatasetView, ErrorResponse, Img2ImgRequest, JobAccepted, JobView, SdapiCreateEmbedding, SdapiCreateHypernetwork,
  SdapiImg2ImgRequest, SdapiInfoResponse, SdapiTrainEmbedding, SdapiTrainHypernetwork, SdapiTxt2ImgRequest, Txt2ImgRequest, TrainingAccepted,
  TrainingRequest, TrainingResumeRequest, TrainingView,
} from '@darkroom/farm';
import { FlowRequest, FlowView } from '@darkroom/farm/flows.js';
import { sdapiSurfacePaths } from './openapi-sdapi.js';

function schema(s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string) => ({ 'application/json': { schema: ref(name) } });
const errors = {
  400: { description: 'invalid request; `error.field` names the field', content: json('Error') },
  401: { description: 'missing or unknown API key', content: json('Error') },
  404: { description: 'no such job (or another tenant\'s)', content: json('Error') },
  413: { description: 'body over MAX_BODY_BYTES', content: json('Error') },
  429: { description: 'per-tenant rate limit; see Retry-After', content: json('Error') },
  503: { description: 'REDIS_UNAVAILABLE: the job store cannot be reached (answered within REDIS_TIMEOUT_MS); see Retry-After', content: json('Error') },
};
const streamLimit = { description: 'per-tenant rate limit, or TOO_MANY_STREAMS: SSE_MAX_STREAMS_PER_TENANT streams already open', content: json('Error') };

/** OpenAPI 3.1, generated from the same zod schemas that validate requests. */
export function openApiDocument(serverUrl: string): Record<string, unknown> {
  const idParam = [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }];
  const submit = (schemaName: string, summary: string) => ({
    post: {
      summary,
      parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 },
        description: 'a retried POST with the same key returns the same job instead of creating another' }],
      requestBody: { required: true, content: json(schemaName) },
      responses: { 202: { description: 'queued', content: json('JobAccepted') }, 422: { description: 'Idempotency-Key reused with another body', content: json('Error') }, ...errors },
    },
  });
  const sync = (schemaName: string, summary: string) => ({
    post: {
      summary, requestBody: { required: true, content: json(schemaName) },
      responses: { 200: { description: 'A1111 response: base64 PNGs, echoed parameters, info as a JSON string',
        headers: {
          'X-Darkroom-Job-Id': { schema: { type: 'string' }, description: 'the job, at /v1/jobs/{id}' },
          'X-Darkroom-Flow-Id': { schema: { type: 'string' }, description: 'with script_name: the flow the script ran as, at /v1/flows/{id} (images: the grids first)' },
          'X-Darkroom-Sampler-Fallback': { schema: { type: 'string' }, description: 'present when sampler_name was no sampler: A1111 1.10 renders it with DPM++ 2M, and so does this API' },
        },
        content: { 'application/json': { schema: {
          type: 'object', properties: { images: { type: 'array', items: { type: 'string' } }, parameters: { type: 'object' }, info: { type: 'string' } },
        } } } },
      422: { description: 'FastAPI validation `detail` list, or a refusal of a field this farm cannot honour (restore_faces, a script_name it does not run, alwayson_scripts, styles, refiner_checkpoint, infotext) naming it, or a bad script argument (script_args[N])' },
      ...errors },
    },
  });
  const create = (schemaName: string, summary: string) => ({
    post: {
      summary, requestBody: { required: true, content: json(schemaName) },
      responses: {
        200: { description: 'A1111\'s info text: `create <kind> filename: <file>`, or `create <kind> error: file <file> already exists` without overwrite_old', content: json('SdapiInfoResponse') },
        422: { description: 'the tenant\'s checkpoint (sd_model_checkpoint) cannot be read', content: json('Error') },
        ...errors,
      },
    },
  });
  const train = (schemaName: string, summary: string) => ({
    post: {
      summary,
      description: 'Blocks until the training ends, as A1111\'s call does; POST /v1/trainings is the asynchronous way. The training is queued like any other: '
        + 'the status line and `X-Darkroom-Training-Id` are sent as soon as it is, and a client that disconnects leaves it running.',
      parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 },
        description: 'a repeated call with the same key waits for (or answers from) the same training instead of starting another' }],
      requestBody: { required: true, content: json(schemaName) },
      responses: {
        200: {
          description: 'A1111\'s info text: `train embedding complete: filename: <file> error: None` (the same words for a hypernetwork), or the error in place of None',
          headers: { 'X-Darkroom-Training-Id': { schema: { type: 'string' }, description: 'the training, at /v1/trainings/{id}' } },
          content: json('SdapiInfoResponse'),
        },
        422: { description: 'Idempotency-Key reused with another body', content: json('Error') },
        ...errors,
      },
    },
  });
  return {
    openapi: '3.1.0',
    info: { title: 'Darkroom', version: '0.1.0', description: 'Stable Diffusion render farm with an AUTOMATIC1111-compatible API' },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } },
      schemas: {
        Txt2ImgRequest: schema(Txt2ImgRequest, 'input'),
        Img2ImgRequest: schema(Img2ImgRequest, 'input'),
        SdapiTxt2ImgRequest: schema(SdapiTxt2ImgRequest, 'input'),
        SdapiImg2ImgRequest: schema(SdapiImg2ImgRequest, 'input'),
        JobAccepted: schema(JobAccepted, 'output'),
        JobView: schema(JobView, 'output'),
        AssetView: schema(AssetView, 'output'),
        DatasetSummary: schema(DatasetSummary, 'output'),
        DatasetView: schema(DatasetView, 'output'),
        TrainingRequest: schema(TrainingRequest, 'input'),
        TrainingResumeRequest: schema(TrainingResumeRequest, 'input'),
        TrainingAccepted: schema(TrainingAccepted, 'output'),
        TrainingView: schema(TrainingView, 'output'),
        SdapiCreateEmbedding: schema(SdapiCreateEmbedding, 'input'),
        SdapiCreateHypernetwork: schema(SdapiCreateHypernetwork, 'input'),
        SdapiTrainEmbedding: schema(SdapiTrainEmbedding, 'input'),
        SdapiTrainHypernetwork: schema(SdapiTrainHypernetwork, 'input'),
        SdapiInfoResponse: schema(SdapiInfoResponse, 'output'),
        FlowRequest: schema(FlowRequest, 'input'),
        FlowView: schema(FlowView, 'output'),
        Error: schema(ErrorResponse, 'output'),
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/txt2img': submit('Txt2ImgRequest', 'queue a txt2img job'),
      '/v1/img2img': submit('Img2ImgRequest', 'queue an img2img job'),
      '/v1/jobs/{id}': {
        get: { summary: 'job state, progress, outputs', parameters: idParam, responses: { 200: { description: 'the job', content: json('JobView') }, ...errors } },
        delete: { summary: 'cancel: a running job stops after its current sampler step', parameters: idParam, responses: { 200: { description: 'finished or cancelled', content: json('JobView') }, 202: { description: 'cancel sent to the worker', content: json('JobView') }, ...errors } },
      },
      '/v1/jobs/{id}/events': { get: {
        summary: 'Server-Sent Events: queued, started, progress, completed, failed, cancelled; ids replay with Last-Event-ID',
        parameters: [...idParam, { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } }],
        responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors, 429: streamLimit },
      } },
      '/v1/jobs/{id}/outputs/{n}.png': { get: { summary: 'download an output (folder storage; S3 outputs use presigned URLs)', parameters: [...idParam, { name: 'n', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: { description: 'PNG', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/jobs/{id}/preview.png': { get: { summary: 'latest live preview (PREVIEW_EVERY_N_STEPS)', parameters: idParam, responses: { 200: { description: 'PNG', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/jobs/{id}/webhooks': { get: { summary: 'webhook delivery log of a job', parameters: idParam, responses: { 200: { description: 'deliveries' }, ...errors } } },
      '/v1/jobs/{id}/webhooks/{messageId}/redeliver': { post: { summary: 'send a past webhook message again (same webhook-id)', parameters: [...idParam, { name: 'messageId', in: 'path', required: true, schema: { type: 'string' } }], responses: { 202: { description: 'queued' }, ...errors } } },
      '/v1/flows': { post: {
        summary: 'queue a flow: child generation jobs spread over every worker, their images composed into a grid when the last one completes',
        description: 'Each child is a /v1/txt2img body, or a /v1/img2img body when it has init_images, validated as those routes validate it '
          + '(a bad field is named `children[3].steps`). Children are retried alone; one that fails for good fails the flow with its error code. '
          + 'Or `script: {name, args}` with `base`: an A1111 script (prompt matrix, X/Y/Z plot, prompts from file or textbox; args in A1111\'s script_args order) '
          + 'whose cells become the children and whose labelled grids the parent composes (a bad argument is named `script.args[3]`). '
          + 'Webhooks: `flow.queued`, `flow.progress` (a child completed), `flow.completed`, `flow.failed`, `flow.cancelled`, each terminal one sent once.',
        parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 },
          description: 'a retried POST with the same key returns the same flow instead of creating another' }],
        requestBody: { required: true, content: json('FlowRequest') },
        responses: { 202: { description: 'queued: {id, state, url, events_url, children: [child job ids]}' }, 422: { description: 'Idempotency-Key reused with another body', content: json('Error') }, ...errors },
      } },
      '/v1/flows/{id}': {
        get: { summary: 'flow state, per-child state and progress, outputs (the grid first, then the children\'s images; partial while it runs)', parameters: idParam, responses: { 200: { description: 'the flow', content: json('FlowView') }, ...errors } },
        delete: { summary: 'cancel the flow and every child: queued children are removed, running ones stop after their current step', parameters: idParam, responses: { 200: { description: 'finished or cancelled', content: json('FlowView') }, 202: { description: 'cancel sent to the children', content: json('FlowView') }, ...errors } },
      },
      '/v1/flows/{id}/events': { get: {
        summary: 'Server-Sent Events of the flow: queued, progress (one per completed child), completed, failed, cancelled; ids replay with Last-Event-ID',
        parameters: [...idParam, { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } }],
        responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors, 429: streamLimit },
      } },
      '/v1/flows/{id}/outputs/{n}.png': { get: { summary: 'download a flow\'s grid (folder storage; S3 grids use presigned URLs; children\'s images are at their jobs)', parameters: [...idParam, { name: 'n', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: { description: 'PNG', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/flows/{id}/outputs/{n}.webp': { get: { summary: 'download a flow\'s animated WebP (seed travel; folder storage, S3 presigns)', parameters: [...idParam, { name: 'n', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: { description: 'animated WebP', content: { 'image/webp': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/flows/{id}/outputs/{n}.gif': { get: { summary: 'download a flow\'s animated GIF (seed travel with `animation.formats` naming gif)', parameters: [...idParam, { name: 'n', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: { description: 'animated GIF', content: { 'image/gif': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/webhook-secret': { get: { summary: 'this tenant\'s whsec_ secret for verifying webhooks', responses: { 200: { description: 'secret' } } } },
      '/v1/styles': {
        get: { summary: 'this tenant\'s saved prompt styles', responses: { 200: { description: '{items: [{name, prompt, negative_prompt}]}' } } },
        put: {
          summary: 'replace the tenant\'s prompt styles with A1111\'s styles.csv (text/csv: name,prompt,negative_prompt)',
          responses: { 200: { description: 'the styles read' }, 400: { description: 'STYLES_BAD_CSV' }, 413: { description: 'too many styles, or over 1 MiB' }, 415: { description: 'not text' } },
        },
      },
      '/v1/gallery': { get: {
        summary: 'the tenant\'s stored outputs, newest first, by cursor; filtered by prompt text, model and date',
        parameters: [
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
          { name: 'cursor', in: 'query', required: false, schema: { type: 'string' }, description: 'next_cursor of the page before' },
          { name: 'q', in: 'query', required: false, schema: { type: 'string' }, description: 'the prompt contains this (any case)' },
          { name: 'model', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'since', in: 'query', required: false, schema: { type: 'string', format: 'date-time' } },
          { name: 'until', in: 'query', required: false, schema: { type: 'string', format: 'date-time' } },
        ],
        responses: { 200: { description: '{items[{id, index, created_at, prompt, model, seed, infotext, cursor, thumb_url, image_url}], next_cursor, total}' }, ...errors },
      } },
      '/v1/gallery/{id}/{n}/thumb.png': { get: { summary: 'a thumbnail (at most 160 px), made once and kept', parameters: [...idParam, { name: 'n', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: { description: 'PNG', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/gallery/{id}/{n}/image.png': { get: { summary: 'a stored output, also after its job has expired', parameters: [...idParam, { name: 'n', in: 'path', required: true, schema: { type: 'integer' } }], responses: { 200: { description: 'PNG', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/{kind}': { get: { summary: 'list models, embeddings, hypernetworks, LoRAs, VAEs or upscalers', parameters: [{ name: 'kind', in: 'path', required: true, schema: { enum: ['models', 'embeddings', 'hypernetworks', 'loras', 'vaes', 'upscalers'] } }], responses: { 200: { description: 'items', content: { 'application/json': { schema: { type: 'object', properties: { items: { type: 'array', items: ref('AssetView') } } } } } } } } },
      '/v1/embeddings/{name}/image': { get: { summary: 'an embedding uploaded as a PNG or WebP: its picture (the file itself)', parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }], responses: { 200: { description: 'the uploaded image', content: { 'image/png': { schema: { type: 'string', format: 'binary' } }, 'image/webp': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/v1/{kind}/{filename}': {
        put: { summary: 'upload a file (raw body); stored by SHA-256', parameters: [{ name: 'kind', in: 'path', required: true, schema: { enum: ['models', 'embeddings', 'hypernetworks', 'loras', 'vaes', 'upscalers'] } }, { name: 'filename', in: 'path', required: true, schema: { type: 'string' } }], requestBody: { content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, responses: { 201: { description: 'stored', content: json('AssetView') }, ...errors } },
        delete: { summary: 'forget a name (bytes shared by hash stay)', parameters: [{ name: 'kind', in: 'path', required: true, schema: { type: 'string' } }, { name: 'filename', in: 'path', required: true, schema: { type: 'string' } }], responses: { 204: { description: 'removed' }, ...errors } },
      },
      '/v1/datasets': {
        get: { summary: 'list this tenant\'s training datasets (without their file lists)', responses: { 200: { description: 'items', content: { 'application/json': { schema: { type: 'object', properties: { items: { type: 'array', items: ref('DatasetSummary') } } } } } }, ...errors } },
        post: {
          summary: 'upload a training dataset: PNG images with optional same-stem .txt captions, as one zip or a multipart form of files',
          description: 'Every file is checked (paths, names, duplicates, PNG headers and sizes, caption encoding, the DATASET_* limits) before anything is stored; a refusal is a 4xx whose `error.file` names the file at fault and nothing is written. Folders inside a zip are flattened; `__MACOSX/` and dotfiles are ignored.',
          parameters: [{ name: 'name', in: 'query', required: false, schema: { type: 'string', maxLength: 100 }, description: 'dataset name (required here for a zip; a form may send it as the field `name` instead)' }],
          requestBody: { required: true, content: {
            'application/zip': { schema: { type: 'string', format: 'binary' } },
            'multipart/form-data': { schema: { type: 'object', properties: { name: { type: 'string' }, files: { type: 'array', items: { type: 'string', format: 'binary' } } } } },
          } },
          responses: {
            201: { description: 'stored', content: json('DatasetView') },
            413: { description: 'over a DATASET_* limit (bytes, files, entries)', content: json('Error') },
            415: { description: 'neither a zip nor a multipart form', content: json('Error') },
            ...Object.fromEntries(Object.entries(errors).filter(([k]) => k !== '413')),
          },
        },
      },
      '/v1/datasets/{id}': {
        get: { summary: 'a dataset and its files (image sizes, captions, hashes)', parameters: idParam, responses: { 200: { description: 'the dataset', content: json('DatasetView') }, ...errors } },
        delete: { summary: 'delete a dataset and its files', parameters: idParam, responses: { 204: { description: 'deleted' }, ...errors } },
      },
      '/v1/trainings': { post: {
        summary: 'queue a textual-inversion or hypernetwork training on a dataset (A1111\'s Train tab fields)',
        description: 'The learn-rate and clip schedules are parsed and batch_size is checked against the dataset before anything is queued: a refusal is a 400 naming the field.',
        parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 } }],
        requestBody: { required: true, content: json('TrainingRequest') },
        responses: { 202: { description: 'queued', content: json('TrainingAccepted') }, 422: { description: 'Idempotency-Key reused with another body', content: json('Error') }, ...errors },
      } },
      '/v1/trainings/{id}': { get: { summary: 'state, step, loss, learn rate, ETA, checkpoints, file and preview URLs', parameters: idParam, responses: { 200: { description: 'the training', content: json('TrainingView') }, ...errors } } },
      '/v1/trainings/{id}/cancel': { post: { summary: 'cancel: a running training stores a checkpoint after its current step and ends cancelled', parameters: idParam, responses: { 200: { description: 'finished or cancelled', content: json('TrainingView') }, 202: { description: 'cancel sent to the trainer', content: json('TrainingView') }, ...errors } } },
      '/v1/trainings/{id}/resume': { post: {
        summary: 'continue a completed or cancelled training from its stored checkpoint, to more steps (a new training)',
        parameters: idParam, requestBody: { required: true, content: json('TrainingResumeRequest') },
        responses: { 202: { description: 'queued', content: json('TrainingAccepted') }, 409: { description: 'not completed or cancelled, or nothing stored', content: json('Error') }, ...errors },
      } },
      '/v1/trainings/{id}/events': { get: {
        summary: 'Server-Sent Events: queued, started, progress, checkpoint, preview, rollback, completed, failed, cancelled; ids replay with Last-Event-ID',
        parameters: [...idParam, { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } }],
        responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors, 429: streamLimit },
      } },
      '/v1/trainings/{id}/files/{file}': { get: { summary: 'download one of A1111\'s files of the training (folder storage; S3 uses presigned URLs)', parameters: [...idParam, { name: 'file', in: 'path', required: true, schema: { type: 'string' } }], responses: { 200: { description: 'the file' }, ...errors } } },
      '/v1/trainings/{id}/images/{file}': { get: { summary: 'download a preview (folder storage; S3 uses presigned URLs)', parameters: [...idParam, { name: 'file', in: 'path', required: true, schema: { type: 'string' } }], responses: { 200: { description: 'PNG', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } }, ...errors } } },
      '/sdapi/v1/txt2img': sync('SdapiTxt2ImgRequest', 'A1111 txt2img (waits for the job)'),
      '/sdapi/v1/img2img': sync('SdapiImg2ImgRequest', 'A1111 img2img (waits for the job)'),
      '/sdapi/v1/create/embedding': create('SdapiCreateEmbedding', 'A1111 create_embedding on the tenant\'s checkpoint; stored as the tenant\'s embedding <name>.pt'),
      '/sdapi/v1/create/hypernetwork': create('SdapiCreateHypernetwork', 'A1111 create_hypernetwork; stored as the tenant\'s hypernetwork <name>.pt'),
      '/sdapi/v1/train/embedding': train('SdapiTrainEmbedding', 'A1111 train_embedding: trains the tenant\'s embedding on an uploaded dataset (waits for the training)'),
      '/sdapi/v1/train/hypernetwork': train('SdapiTrainHypernetwork', 'A1111 train_hypernetwork: trains the tenant\'s hypernetwork on an uploaded dataset (waits for the training)'),
      '/sdapi/v1/progress': { get: {
        summary: 'A1111 progress of this tenant\'s latest /sdapi job: state.job_timestamp is the job\'s start, current_task its id',
        parameters: [{ name: 'skip_current_image', in: 'query', required: false, schema: { type: 'boolean', default: false } }],
        responses: { 200: { description: '{progress, eta_relative, state, current_image, textinfo, current_task}' } },
      } },
      '/sdapi/v1/interrupt': { post: { summary: 'A1111 interrupt: the running /sdapi job stops sampling and returns the images it reached; one not started is cancelled', responses: { 200: { description: '{}' } } } },
      '/sdapi/v1/samplers': { get: { summary: 'A1111 sampler list', responses: { 200: { description: 'samplers' } } } },
      '/sdapi/v1/schedulers': { get: { summary: 'A1111 scheduler list', responses: { 200: { description: 'schedulers' } } } },
      '/sdapi/v1/sd-models': { get: { summary: 'checkpoints', responses: { 200: { description: 'models' } } } },
      '/sdapi/v1/embeddings': { get: { summary: 'embeddings', responses: { 200: { description: 'embeddings' } } } },
      '/sdapi/v1/hypernetworks': { get: { summary: 'hypernetworks', responses: { 200: { description: 'hypernetworks' } } } },
      '/sdapi/v1/png-info': { post: { summary: 'read the infotext of a PNG', responses: { 200: { description: 'info, items, parameters' }, ...errors } } },
      '/sdapi/v1/options': {
        get: { summary: 'settings (per tenant)', responses: { 200: { description: 'options' } } },
        post: { summary: 'change settings (per tenant)', responses: { 200: { description: 'null' }, ...errors } },
      },
      ...sdapiSurfacePaths(),
      '/healthz': { get: { summary: 'liveness and Redis reachability', security: [], responses: { 200: { description: 'ok' }, 503: { description: 'Redis unreachable' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics (ADMIN_KEY when set)', responses: { 200: { description: 'text' } } } },
      '/v1/queue': { get: { summary: 'queue depth for autoscalers (ADMIN_KEY)', responses: { 200: { description: 'counts' } } } },
    },
  };
}
