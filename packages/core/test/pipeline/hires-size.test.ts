import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hiresSize } from '../../src/pipeline/hires-size.js';

const base = { width: 512, height: 768, hr_scale: 2, hr_resize_x: 0, hr_resize_y: 0 };

test('hires size: scale, one side given, both sides (cover, then crop in latent pixels)', () => {
  assert.deepEqual(hiresSize({ ...base, hr_scale: 1.5 }), { width: 768, height: 1152, truncateX: 0, truncateY: 0 });
  assert.deepEqual(hiresSize({ ...base, hr_resize_x: 1024 }), { width: 1024, height: 1536, truncateX: 0, truncateY: 0 });
  assert.deepEqual(hiresSize({ ...base, hr_resize_y: 1000 }), { width: 666, height: 1000, truncateX: 0, truncateY: 0 });
  assert.deepEqual(hiresSize({ ...base, hr_resize_x: 1024, hr_resize_y: 1024 }), { width: 1024, height: 1536, truncateX: 0, truncateY: 64 });
  assert.deepEqual(hiresSize({ ...base, hr_resize_x: 600, hr_resize_y: 1200 }), { width: 800, height: 1200, truncateX: 25, truncateY: 0 });
});
