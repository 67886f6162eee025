import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { checkpointCompanions, findVocabulary, writeVocabularyFolder } from '../../src/pipeline/checkpoint-files.js';
import {
  buildDemoVocabulary,
  HF_VOCABULARY_FILES,
  vocabularyFromHuggingFace,
  vocabularyFromMerges,
  vocabularyToHuggingFace,
} from '../../src/text/bpe-vocab.js';
import { ClipTokenizer } from '../../src/text/tokenizer.js';
import { fixText, pythonHtmlUnescape, whitespaceClean } from '../../src/text/text-cleanup.js';

const vocabDir = join(oracleRoot(), 'text/vocab');
const haveVocab = existsSync(join(vocabDir, HF_VOCABULARY_FILES.encoder));

test('ftfy-style clean-up on the strings prompts actually contain', () => {
  assert.equal(fixText('ﬁne ﬂow'), 'fine flow');
  assert.equal(fixText('ＦＵＬＬ１２'), 'FULL12');
  assert.equal(fixText('“smart” ‘quotes’'), '"smart" \'quotes\'');
  assert.equal(fixText('cafÃ© mojibake'), 'café mojibake');
  assert.equal(fixText('â€œquotedâ€\x9d'), '"quoted"');
  assert.equal(fixText('Tom &amp; Jerry'), 'Tom & Jerry');
  assert.equal(fixText('&amp;amp;'), '&', 'entities are unescaped until the text stops changing');
  assert.equal(fixText('<b>x</b> &amp;'), '<b>x</b> &amp;', 'no unescaping once a line has <');
  assert.equal(fixText('café naïve'), 'café naïve', 'real Latin-1 text is not mojibake');
  assert.equal(fixText('e\u0301'), 'é', 'NFC');
  assert.equal(fixText('a\x07b'), 'ab');
  assert.equal(whitespaceClean('  a\t\u3000b\n '), 'a b');
  assert.equal(whitespaceClean('a\u200bb'), 'a\u200bb', 'zero-width space is not whitespace');
});

test('demo vocabulary is deterministic, small and tokenizes without downloads', () => {
  const a = buildDemoVocabulary();
  const b = buildDemoVocabulary();
  assert.deepEqual([...a.encoder], [...b.encoder]);
  assert.deepEqual(a.merges, b.merges);
  assert.ok(a.encoder.size < 1000, `demo vocab has ${a.encoder.size} entries`);
  const tok = new ClipTokenizer(a);
  assert.equal(tok.vocabSize, a.encoder.size);
  assert.equal(tok.bosId, a.encoder.size - 2);
  assert.equal(tok.eosId, a.encoder.size - 1);
  assert.notEqual(tok.commaId, undefined);
  // Known words become one token each; unknown words fall back to bytes.
  assert.deepEqual(tok.tokenize('A Castle in a FOREST, grainy'), ['a</w>', 'castle</w>', 'in</w>', 'a</w>', 'forest</w>', ',</w>', 'grainy</w>']);
  assert.deepEqual(tok.tokenize('zq'), ['z', 'q</w>']);
  assert.deepEqual(tok.tokenize('猫').length, 3, 'a 3-byte character is 3 byte symbols');
  assert.deepEqual(tok.encode('<|endoftext|>'), [tok.eosId]);
});

test('vocabulary ids follow upstream order: bytes, bytes</w>, merges, specials', () => {
  const v = vocabularyFromMerges([['h', 'i</w>']]);
  assert.equal(v.encoder.get('!'), 0);
  assert.equal(v.encoder.get('!</w>'), 256);
  assert.equal(v.encoder.get('hi</w>'), 512);
  assert.equal(v.encoder.get('<|startoftext|>'), 513);
  assert.equal(v.encoder.get('<|endoftext|>'), 514);
});

test('real CLIP vocabulary: tricky strings', { skip: haveVocab ? false : `no CLIP vocab at ${vocabDir}` }, () => {
  const tok = ClipTokenizer.fromDirectory(vocabDir);
  assert.equal(tok.vocabSize, 49408);
  assert.equal(tok.bosId, 49406);
  assert.equal(tok.eosId, 49407);
  assert.equal(tok.commaId, 267);
  assert.deepEqual(tok.encode('a photo of a cat'), [320, 1125, 539, 320, 2368]);
  assert.deepEqual(tok.encode(''), []);
  assert.deepEqual(tok.encode('   '), []);
  // digits are single tokens; special tokens survive as ids, even upper-cased
  assert.deepEqual(tok.tokenize('1024x768').slice(0, 4), ['1</w>', '0</w>', '2</w>', '4</w>']);
  assert.deepEqual(tok.encode('a <|endoftext|> b'), [320, 49407, 321]);
  assert.deepEqual(tok.encode('<|ENDOFTEXT|>'), [49407]);
  assert.deepEqual(tok.encode("it's"), tok.encode("IT'S"));
  // the same ids whichever file layout the vocabulary came from
  const gzDir = mkdtempSync(join(tmpdir(), 'clip-gz-'));
  try {
    copyFileSync(join(vocabDir, 'bpe_simple_vocab_16e6.txt.gz'), join(gzDir, 'bpe_simple_vocab_16e6.txt.gz'));
    const fromGz = ClipTokenizer.fromDirectory(gzDir);
    for (const text of ['supercalifragilisticexpialidocious', 'masterpiece, (best:1.2) 猫耳 👍🏽']) {
      assert.deepEqual(fromGz.encode(text), tok.encode(text));
    }
  } finally {
    rmSync(gzDir, { recursive: true, force: true });
  }
  assert.throws(() => ClipTokenizer.fromDirectory(join(gzDir, 'missing')), { code: 'TOKENIZER_NOT_FOUND' });
});

test('openai/open_clip path unescapes HTML even when the text has <', { skip: haveVocab ? false : `no CLIP vocab at ${vocabDir}` }, () => {
  const tok = ClipTokenizer.fromDirectory(vocabDir);
  const text = '<b>bold</b> &amp; more';
  assert.notDeepEqual(tok.encodeOpenAi(text), tok.encode(text));
  assert.deepEqual(tok.encodeOpenAi(text), tok.encode('<b>bold</b> & more'));
  assert.deepEqual(tok.encodeOpenAi('a photo of a cat'), tok.encode('a photo of a cat'));
});

test('HTML entities: ftfy table with upper-cased names; Python html.unescape for the openai path', () => {
  assert.equal(fixText('&NTILDE;&AMP;&eacute;'), 'Ñ&é');
  assert.equal(fixText('&#x27;q&#39; &#150;'), "'q' –", 'numeric references, C1 range read as Windows-1252');
  assert.equal(fixText('&bogus;'), '&bogus;');
  assert.equal(pythonHtmlUnescape('&amp &ampx &lt;b&gt; &#65'), '& &x <b> A', 'legacy entities without ;');
});

test('a vocabulary written as a checkpoint companion folder is the one a checkpoint loads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vocab-folder-'));
  try {
    const vocab = buildDemoVocabulary(['zeppelin']);
    const checkpoint = join(dir, 'model.safetensors');
    const companions = checkpointCompanions(checkpoint);
    assert.deepEqual(companions, { config: join(dir, 'model.json'), vocabulary: join(dir, 'model.vocab') });
    await writeVocabularyFolder(companions.vocabulary, vocab);
    assert.equal(findVocabulary(checkpoint, undefined), companions.vocabulary);
    const loaded = ClipTokenizer.fromDirectory(companions.vocabulary);
    const original = new ClipTokenizer(vocab);
    assert.equal(loaded.vocabSize, original.vocabSize);
    for (const text of ['a zeppelin over a red castle', 'photo, best quality', '<|endoftext|> zzq']) {
      assert.deepEqual(loaded.encode(text), original.encode(text), text);
    }
    const texts = new Map(vocabularyToHuggingFace(vocab));
    const back = vocabularyFromHuggingFace(texts.get(HF_VOCABULARY_FILES.encoder)!, texts.get(HF_VOCABULARY_FILES.merges)!);
    assert.deepEqual(new Map(back.encoder), new Map(vocab.encoder), 'token ids (JSON puts numeric-looking tokens first; order is no part of a vocabulary)');
    assert.deepEqual(back.merges, vocab.merges);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
