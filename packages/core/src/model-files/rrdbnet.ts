/**
 * ESRGAN-family upscalers (RRDBNet): the architecture read off a state dict's keys and shapes (pure description,
 * what an upload check needs; models/rrdbnet-graph.ts builds the graph).
 *
 * Three key layouts name the same network: ESRGAN's original sequential one (`model.0`, `model.1.sub.N.RDB1.
 * conv1.0`, ..., `model.1.sub.<nb>` the trunk conv, then upsample convs every third index, HR conv, last conv),
 * the later ESRGAN one (`conv_first`, `RRDB_trunk.N.RDB1.conv1`, `trunk_conv`, `upconvK`, `HRconv`,
 * `conv_last`) and Real-ESRGAN's (`body.N.rdb1.conv1`, `conv_body`, `conv_upK`, `conv_hr`, possibly wrapped in
 * `params_ema`). Weights are renamed to Real-ESRGAN's names here, so the graph has one form.
 *
 * The network: conv_first; a trunk of RRDBs (each three residual dense blocks of five 3x3 convs, LeakyReLU 0.2
 * after the first four, dense concatenation, the block's output scaled by 0.2 and added to its input, and the
 * RRDB's likewise) and conv_body, added to conv_first's output; per factor of 2 a nearest x2 upsample, a conv
 * and LeakyReLU; conv_hr with LeakyReLU; conv_last.
 */
import { DarkroomError } from '../errors.js';
import type { Float32Tensor } from '../tensor.js';

export type RrdbLayout = 'esrgan' | 'esrgan-new' | 'real-esrgan';

export interface RrdbConfig {
  readonly layout: RrdbLayout;
  /** Input and output channels (3: the image). */
  readonly channels: number;
  /** Feature channels (nf). */
  readonly features: number;
  /** RRDBs in the trunk (nb). */
  readonly blocks: number;
  /** Growth channels of each dense conv (gc). */
  readonly growth: number;
  /** 2 ** (number of upsampling convs). */
  readonly scale: number;
}

export interface RrdbWeights {
  readonly config: RrdbConfig;
  /** Weights under Real-ESRGAN's names (`conv_first.weight`, `body.0.rdb1.conv1.bias`, ...). */
  readonly tensors: ReadonlyMap<string, Float32Tensor>;
}

type Shape = readonly number[];

function unsupported(file: string, reason: string, details: Record<string, unknown> = {}): DarkroomError {
  return new DarkroomError('UPSCALER_UNSUPPORTED', `${file}: not an RRDBNet (ESRGAN / Real-ESRGAN) upscaler: ${reason}`, { file, ...details });
}

/** Every RRDBNet conv by its Real-ESRGAN name, mapped to the file's name for `layout`. */
function namesFor(layout: RrdbLayout, blocks: number, ups: number, lastIndex: number): Map<string, string> {
  const m = new Map<string, string>();
  const add = (canon: string, file: string): void => {
    m.set(`${canon}.weight`, `${file}.weight`);
    m.set(`${canon}.bias`, `${file}.bias`);
  };
  for (let b = 0; b < blocks; b++) {
    for (let r = 1; r <= 3; r++) {
      for (let c = 1; c <= 5; c++) {
        const canon = `body.${b}.rdb${r}.conv${c}`;
        if (layout === 'esrgan') add(canon, `model.1.sub.${b}.RDB${r}.conv${c}.0`);
        else if (layout === 'esrgan-new') add(canon, `RRDB_trunk.${b}.RDB${r}.conv${c}`);
        else add(canon, canon);
      }
    }
  }
  if (layout === 'esrgan') {
    add('conv_first', 'model.0');
    add('conv_body', `model.1.sub.${blocks}`);
    for (let u = 0; u < ups; u++) add(`conv_up${u + 1}`, `model.${3 + 3 * u}`);
    add('conv_hr', `model.${lastIndex - 2}`);
    add('conv_last', `model.${lastIndex}`);
  } else if (layout === 'esrgan-new') {
    add('conv_first', 'conv_first');
    add('conv_body', 'trunk_conv');
    for (let u = 0; u < ups; u++) add(`conv_up${u + 1}`, `upconv${u + 1}`);
    add('conv_hr', 'HRconv');
    add('conv_last', 'conv_last');
  } else {
    for (const n of ['conv_first', 'conv_body', 'conv_hr', 'conv_last']) add(n, n);
    for (let u = 0; u < ups; u++) add(`conv_up${u + 1}`, `conv_up${u + 1}`);
  }
  return m;
}

function countWhile(test: (i: number) => boolean, from = 0): number {
  let n = from;
  while (test(n)) n++;
  return n - from;
}

/**
 * The RRDBNet a state dict describes, and the map from Real-ESRGAN names to its own keys. Anything that is not
 * exactly one of the three layouts with 3x3 convs of consistent shapes is refused, naming the first problem.
 */
export function inferRrdb(shapes: ReadonlyMap<string, Shape>, file = 'upscaler'): { config: RrdbConfig; names: Map<string, string> } {
  let layout: RrdbLayout;
  let blocks: number;
  let ups: number;
  let lastIndex = -1;
  if (shapes.has('model.0.weight')) {
    layout = 'esrgan';
    blocks = countWhile((b) => shapes.has(`model.1.sub.${b}.RDB1.conv1.0.weight`));
    let top = -1;
    for (const k of shapes.keys()) {
      const m = /^model\.(\d+)\.weight$/.exec(k);
      if (m) top = Math.max(top, Number(m[1]));
    }
    lastIndex = top;
    ups = (top - 4) / 3;
    if (!Number.isInteger(ups) || ups < 0) throw unsupported(file, `its last conv is model.${top}, which fits no upsampling layout (nearest-neighbour convs at model.3, model.6, ...)`);
  } else if (shapes.has('RRDB_trunk.0.RDB1.conv1.weight') || shapes.has('conv_first.weight') && shapes.has('trunk_conv.weight')) {
    layout = 'esrgan-new';
    blocks = countWhile((b) => shapes.has(`RRDB_trunk.${b}.RDB1.conv1.weight`));
    ups = countWhile((u) => shapes.has(`upconv${u}.weight`), 1);
  } else if (shapes.has('body.0.rdb1.conv1.weight') || shapes.has('conv_first.weight') && shapes.has('conv_body.weight')) {
    layout = 'real-esrgan';
    blocks = countWhile((b) => shapes.has(`body.${b}.rdb1.conv1.weight`));
    ups = countWhile((u) => shapes.has(`conv_up${u}.weight`), 1);
  } else {
    throw unsupported(file, 'none of the ESRGAN key layouts (model.0.weight, conv_first + RRDB_trunk, conv_first + body) is there');
  }
  if (blocks === 0) throw unsupported(file, 'the trunk has no RRDB blocks');
  const names = namesFor(layout, blocks, ups, lastIndex);
  const get = (canon: string): Shape => {
    const key = names.get(canon)!;
    const s = shapes.get(key);
    if (!s) throw unsupported(file, `missing tensor "${key}"`, { key });
    return s;
  };
  const first = get('conv_first.weight');
  if (first.length !== 4) throw unsupported(file, `conv_first is [${first}], not a 2-D conv`);
  const features = first[0]!;
  const channels = first[1]!;
  const growth = get('body.0.rdb1.conv1.weight')[0]!;
  const last = get('conv_last.weight');
  if (channels !== 3 || last[0] !== 3) {
    throw unsupported(file, `it maps ${channels} input channels to ${last[0]} (only 3 to 3 is supported; pixel-unshuffle variants such as RealESRGAN x2plus are not)`, {
      inputChannels: channels,
      outputChannels: last[0],
    });
  }
  const expect = (canon: string, out: number, inp: number): void => {
    const w = get(`${canon}.weight`);
    const b = get(`${canon}.bias`);
    if (w.length !== 4 || w[0] !== out || w[1] !== inp || w[2] !== 3 || w[3] !== 3) {
      throw unsupported(file, `"${names.get(`${canon}.weight`)}" is [${w}], expected [${out}, ${inp}, 3, 3]`, { key: names.get(`${canon}.weight`) });
    }
    if (b.length !== 1 || b[0] !== out) throw unsupported(file, `"${names.get(`${canon}.bias`)}" is [${b}], expected [${out}]`, { key: names.get(`${canon}.bias`) });
  };
  expect('conv_first', features, channels);
  for (let b = 0; b < blocks; b++) {
    for (let r = 1; r <= 3; r++) {
      for (let c = 1; c <= 5; c++) expect(`body.${b}.rdb${r}.conv${c}`, c < 5 ? growth : features, features + (c - 1) * growth);
    }
  }
  expect('conv_body', features, features);
  for (let u = 1; u <= ups; u++) expect(`conv_up${u}`, features, features);
  expect('conv_hr', features, features);
  expect('conv_last', channels, features);
  const known = new Set(names.values());
  const extra = [...shapes.keys()].filter((k) => !known.has(k));
  if (extra.length > 0) throw unsupported(file, `unexpected tensor "${extra[0]}" (${extra.length} not part of an RRDBNet)`, { key: extra[0] });
  return { config: { layout, channels, features, blocks, growth, scale: 2 ** ups }, names };
}
