import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentFiles } from '../../src/pipeline/recent-files.js';

test('recent files: at most the limit, the least recently used dropped first', () => {
  const files = new RecentFiles<number>(2);
  files.set('a', 1);
  files.set('b', 2);
  assert.equal(files.get('a'), 1); // a is now the most recent
  files.set('c', 3);
  assert.deepEqual([...files.keys()].sort(), ['a', 'c']);
  files.set('a', 4);
  files.set('d', 5);
  assert.deepEqual([...files.keys()].sort(), ['a', 'd']);
  assert.equal(files.get('b'), undefined);
  files.delete('a');
  assert.equal(files.size, 1);
});
