import { z } from 'zod';
import { ExtrasBatchImagesRequest, ExtrasSingleImageRequest } from './routes/sdapi-extras.js';

type Schema = Record<string, unknown>;

const str = { type: 'string' };
const nstr = { type: ['string', 'null'] };
const obj = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({ type: 'object', properties, required });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const ok = (description: string, schema?: Schema) => ({ 200: { description, ...(schema ? { content: { 'application/json': { schema } } } : {}) } });

/** FastAPI's 422 body for a request A1111's models reject. */
const validation = {
  422: {
    description: 'A1111 validation error (FastAPI `detail` list), or a refusal naming the unsupported field (`detail` text and `error`)',
    content: { 'application/json': { schema: { type: 'object', properties: {
      detail: { oneOf: [arr(obj({ loc: arr({ type: ['string', 'integer'] }), msg: str, type: str })), str] },
    } } } },
  },
};

function requestSchema(s: z.ZodType): Schema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

const get = (summary: string, description: string, schema?: Schema) => ({ get: { summary, responses: ok(description, schema) } });
const post = (summary: string, responses: Record<number, unknown>, body?: Schema) => ({
  post: { summary, ...(body ? { requestBody: { required: true, content: { 'application/json': { schema: body } } } } : {}), responses },
});
const refused = (summary: string, why: string, body?: Schema) => post(summary, { ...validation, 200: { description: `never: ${why}` } }, body);

/**
 * The A1111 v1.10.1 routes beyond generation, options and training, with A1111's response models
 * (modules/api/models.py) as schemas, so `/openapi.json` lists the whole `/sdapi/v1` surface.
 */
export function sdapiSurfacePaths(): Record<string, unknown> {
  const upscaler = obj({ name: str, model_name: nstr, model_path: nstr, model_url: nstr, scale: { type: ['number', 'null'] } });
  const named = obj({ name: str });
  return {
    '/sdapi/v1/upscalers': get(
      'image upscalers for hr_upscaler and the extras routes: None, Lanczos, Nearest, the tenant\'s upscaler uploads (PUT /v1/upscalers/{filename}), MODELS_DIR/ESRGAN files and the RealESRGAN folder\'s known files',
      'UpscalerItem list', arr(upscaler),
    ),
    '/sdapi/v1/latent-upscale-modes': get('latent upscale modes the engine runs', 'LatentUpscalerModeItem list', arr(named)),
    '/sdapi/v1/sd-vae': get('the tenant\'s VAE uploads (PUT /v1/vaes/{filename}): model_name is the name sd_vae takes, filename the uploaded file name', 'SDVaeItem list', arr(obj({ model_name: str, filename: str }))),
    '/sdapi/v1/face-restorers': get('face restorers (none on this farm)', 'FaceRestorerItem list', arr(obj({ name: str, cmd_dir: nstr }))),
    '/sdapi/v1/realesrgan-models': get('Real-ESRGAN models the farm has: uploads in Real-ESRGAN\'s key layout and MODELS_DIR/RealESRGAN\'s known files', 'RealesrganItem list', arr(obj({ name: str, path: nstr, scale: { type: ['integer', 'null'] } }))),
    '/sdapi/v1/prompt-styles': get('the tenant\'s saved prompt styles (PUT /v1/styles)', 'PromptStyleItem list', arr(obj({ name: str, prompt: nstr, negative_prompt: nstr }))),
    '/sdapi/v1/scripts': get('selectable and always-on scripts (none)', 'ScriptsList', obj({ txt2img: arr(str), img2img: arr(str) })),
    '/sdapi/v1/script-info': get('script arguments (none)', 'ScriptInfo list', arr({ type: 'object' })),
    '/sdapi/v1/extensions': get('installed extensions (none)', 'ExtensionItem list', arr({ type: 'object' })),
    '/sdapi/v1/loras': get(
      'the tenant\'s LoRA / LyCORIS uploads (the Lora extension\'s route): path is the uploaded file name, alias and metadata as read from the file',
      'LoRA list', arr(obj({ name: str, alias: str, path: str, metadata: { type: 'object' } })),
    ),
    '/sdapi/v1/refresh-loras': post('rescan LoRAs (a no-op: listings and jobs read the uploads afresh; header X-Darkroom-No-Op)', ok('null')),
    '/sdapi/v1/memory': get(
      'the fleet\'s memory: total = live generation workers\' budgets, used = their resident memory at the last heartbeat; cuda unavailable (onnxruntime)',
      'MemoryResponse', obj({ ram: { type: 'object' }, cuda: { type: 'object' } }),
    ),
    '/sdapi/v1/cmd-flags': get('the A1111 flags that describe this server', 'flags'),
    '/sdapi/v1/refresh-checkpoints': post('rescan checkpoints (a no-op: every listing reads them afresh; header X-Darkroom-No-Op)', ok('null')),
    '/sdapi/v1/refresh-embeddings': post('rescan embeddings (a no-op, as above)', ok('null')),
    '/sdapi/v1/refresh-vae': post('rescan VAEs (a no-op, as above)', ok('null')),
    '/sdapi/v1/unload-checkpoint': post('accepted no-op: workers load each job\'s checkpoint into their own caches (header X-Darkroom-No-Op)', ok('{}')),
    '/sdapi/v1/reload-checkpoint': post('accepted no-op, as unload-checkpoint', ok('{}')),
    '/sdapi/v1/skip': post('A1111 skip: the running job\'s current iteration stops sampling, keeps its image, and the job goes on with the next', ok('null')),
    '/sdapi/v1/server-kill': post('refused: A1111 serves it only with --api-server-stop; not a tenant\'s to call', { 404: { description: '{"detail": "Not Found"}' } }),
    '/sdapi/v1/server-restart': post('refused, as server-kill', { 404: { description: '{"detail": "Not Found"}' } }),
    '/sdapi/v1/server-stop': post('refused, as server-kill', { 404: { description: '{"detail": "Not Found"}' } }),
    '/sdapi/v1/interrogate': refused('CLIP / DeepDanbooru captioning', 'interrogation is not supported: 422 naming model', obj({ image: str, model: str }, [])),
    '/sdapi/v1/extra-single-image': post(
      'A1111 extras on one image: upscaled on a worker by upscaler_1 (and upscaler_2 blended in), by upscaling_resize or to upscaling_resize_w x _h (cropped when upscaling_crop); face restorers refused (422)',
      { ...ok('ExtrasSingleImageResponse: the PNG (source text chunks kept, `postprocessing` added) and html_info', obj({ image: nstr, html_info: str })), ...validation },
      requestSchema(ExtrasSingleImageRequest),
    ),
    '/sdapi/v1/extra-batch-images': post(
      'A1111 extras on several images (imageList), as extra-single-image',
      { ...ok('ExtrasBatchImagesResponse', obj({ images: arr(str), html_info: str })), ...validation },
      requestSchema(ExtrasBatchImagesRequest),
    ),
  };
}
