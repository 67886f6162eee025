/**
 * A1111's images.draw_grid_annotations: a grid of cells of width x height gets a white band on top with one
 * list of label lines per column and, when any row label has text, a band of 3/4 of a cell's width on the left
 * with one list per row; cells are spread `margin` pixels apart. Labels are wrapped at word boundaries to the
 * column (or band) width and drawn centred, black when active and grey struck through when not (prompt matrix
 * parts left out). Sizes follow A1111's rules (font size (w + h) // 25, line spacing half of it); the glyphs
 * are the bitmap font of training/caption-font.ts, so text is legible but not A1111's TrueType rendering.
 */
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';
import { fontScale, FONT_ASCENT, rasterizeText, textWidth } from '../training/caption-font.js';
import type { GridAnnotation, GridLegend } from './types.js';

const ACTIVE = [0, 0, 0] as const;
const INACTIVE = [153, 153, 153] as const;

interface Line {
  readonly text: string;
  readonly active: boolean;
  /** Width and height at the grid's font size (PIL's multiline_textbbox). */
  readonly size: readonly [number, number];
  readonly allowedWidth: number;
}

const lineHeight = (scale: number): number => (FONT_ASCENT + 1) * scale;

function measure(text: string, scale: number): [number, number] {
  return text === '' ? [0, 0] : [textWidth(text, scale), lineHeight(scale)];
}

/** The wrap helper: words added to the last line while it fits; a word that does not fit starts a new line. */
export function wrapWords(text: string, scale: number, maxWidth: number): string[] {
  const lines = [''];
  for (const word of text.split(/\s+/u).filter((w) => w !== '')) {
    const line = `${lines[lines.length - 1]} ${word}`.trim();
    if (textWidth(line, scale) <= maxWidth) lines[lines.length - 1] = line;
    else lines.push(word);
  }
  return lines;
}

/** The band a label may draw in: a label too wide even at the smallest size is cut at its band's edge. */
interface Band {
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
}

function plotter(img: RasterImage, band: Band, colour: readonly [number, number, number]) {
  return (x: number, y: number): void => {
    if (x < band.x0 || y < band.y0 || x >= band.x1 || y >= band.y1) return;
    img.data.set(colour, (y * img.width + x) * 3);
  };
}

function drawLines(img: RasterImage, band: Band, x: number, y: number, lines: readonly Line[], fontSize: number, spacing: number): void {
  let drawY = y;
  for (const line of lines) {
    // draw_texts shrinks the font one size at a time until the line fits its width (or the size reaches 0).
    let size = fontSize;
    while (textWidth(line.text, fontScale(size)) > line.allowedWidth && size > 0) size--;
    const scale = fontScale(size);
    const colour = line.active ? ACTIVE : INACTIVE;
    const plot = plotter(img, band, colour);
    // Anchor "mm": the text's box centred on (x, drawY + height / 2).
    const left = Math.round(x - textWidth(line.text, scale) / 2);
    const top = Math.round(drawY + line.size[1] / 2 - lineHeight(scale) / 2);
    rasterizeText(line.text, left, top, scale, plot);
    if (!line.active) {
      const half = Math.floor(line.size[0] / 2);
      const ly = Math.floor(drawY + Math.floor(line.size[1] / 2));
      for (let yy = ly - 2; yy < ly + 2; yy++) for (let xx = Math.floor(x - half); xx <= Math.floor(x + half); xx++) plot(xx, yy);
    }
    drawY += line.size[1] + spacing;
  }
}

export function drawGridAnnotations(im: RasterImage, width: number, height: number, legend: GridLegend): RasterImage {
  const { columns, rows, margin } = legend;
  const fontSize = Math.floor((width + height) / 25);
  const spacing = Math.floor(fontSize / 2);
  const scale = fontScale(fontSize);
  const padLeft = rows.some((lines) => lines.some((l) => l.text.length > 0)) ? Math.floor((width * 3) / 4) : 0;
  const cols = Math.floor(im.width / width);
  const rowCount = Math.floor(im.height / height);
  if (cols !== columns.length) throw new DarkroomError('IMAGE_GRID_INVALID', `bad number of horizontal texts: ${columns.length}; must be ${cols}`);
  if (rowCount !== rows.length) throw new DarkroomError('IMAGE_GRID_INVALID', `bad number of vertical texts: ${rows.length}; must be ${rowCount}`);

  const layout = (texts: readonly GridAnnotation[], allowedWidth: number): Line[] =>
    texts.flatMap((t) => wrapWords(t.text, scale, allowedWidth).map((text) => ({ text, active: t.active, size: measure(text, scale), allowedWidth })));
  const hor = columns.map((t) => layout(t, width));
  const ver = rows.map((t) => layout(t, padLeft));
  const horHeights = hor.map((lines) => lines.reduce((s, l) => s + l.size[1] + spacing, 0) - spacing);
  const verHeights = ver.map((lines) => lines.reduce((s, l) => s + l.size[1] + spacing, 0) - spacing * lines.length);
  const padTop = horHeights.reduce((a, b) => a + b, 0) === 0 ? 0 : Math.max(...horHeights) + spacing * 2;

  const outW = im.width + padLeft + margin * (cols - 1);
  const outH = im.height + padTop + margin * (rowCount - 1);
  const out: RasterImage = { width: outW, height: outH, channels: 3, data: new Uint8Array(outW * outH * 3).fill(255) };
  for (let row = 0; row < rowCount; row++) {
    for (let col = 0; col < cols; col++) {
      const dx = padLeft + (width + margin) * col;
      const dy = padTop + (height + margin) * row;
      for (let y = 0; y < height; y++) {
        const from = ((height * row + y) * im.width + width * col) * 3;
        out.data.set(im.data.subarray(from, from + width * 3), ((dy + y) * outW + dx) * 3);
      }
    }
  }
  // PIL draws past the bands when a label cannot shrink enough; cutting it keeps every cell's pixels its image's.
  const topBand: Band = { x0: 0, y0: 0, x1: outW, y1: padTop };
  const leftBand: Band = { x0: 0, y0: padTop, x1: padLeft, y1: outH };
  for (let col = 0; col < cols; col++) {
    drawLines(out, topBand, padLeft + (width + margin) * col + width / 2, padTop / 2 - horHeights[col]! / 2, hor[col]!, fontSize, spacing);
  }
  for (let row = 0; row < rowCount; row++) {
    drawLines(out, leftBand, padLeft / 2, padTop + (height + margin) * row + height / 2 - verHeights[row]! / 2, ver[row]!, fontSize, spacing);
  }
  return out;
}
