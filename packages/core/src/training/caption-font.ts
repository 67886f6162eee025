/**
 * A small bitmap font for the captions A1111 draws on training previews. A1111 renders them with a TrueType font
 * through FreeType; no font file ships here, so captions are legible but never pixel-equal to A1111's.
 *
 * Each printable ASCII glyph is 5 columns by 8 rows: rows 0-6 sit on the baseline, row 7 holds descenders. A row
 * is one base-32 digit whose bit 4 is the leftmost column. Characters outside printable ASCII draw as '?'.
 */

const GLYPH_TABLE = [
  '0000000044444040aaa00000aavavaa04fke5u40op248j30cik8lid044400000', //   ! " # $ % & '
  '248884208422248004lel400044v440000000c48000v000000000cc001248g00', // ( ) * + , - . /
  'ehjlphe04c4444e0eh1248v0v2421he026aiv220vgu11he068guhhe0v1248880', // 0 1 2 3 4 5 6 7
  'ehhehhe0ehhf12c00cc0cc000cc0c480248g842000v0v00084212480eh124040', // 8 9 : ; < = > ?
  'eh1dlle0ehhvhhh0uhhuhhu0ehggghe0sihhhis0vgguggv0vgguggg0ehgnhhf0', // @ A B C D E F G
  'hhhvhhh0e44444e072222ic0hikokih0ggggggv0hrllhhh0hhpljhh0ehhhhhe0', // H I J K L M N O
  'uhhuggg0ehhhlid0uhhukih0fgge11u0v4444440hhhhhhe0hhhhha40hhhllla0', // P Q R S T U V W
  'hha4ahh0hhha4440v1248gv0e88888e00g842100e22222e04ah00000000000v0', // X Y Z [ \ ] ^ _
  '8420000000e1fhf0ggmphhu000egghe011djhhf000ehvge0698s888000fhhf1e', // ` a b c d e f g
  'ggmphhh040c444e0206222icggikoki0c44444e000qllhh000mphhh000ehhhe0', // h i j k l m n o
  '00uhhugg00fhhf1100mpggg000ege1u088s8896000hhhjd000hhha4000hhlla0', // p q r s t u v w
  '00ha4ah000hhhf1e00v248v0244844204444444084424480008l2000', // x y z { | } ~
].join('');

const FIRST = 0x20;
const LAST = 0x7e;
const ROWS = 8;
const COLUMNS = 5;

/** Rows above the baseline, in font units. */
export const FONT_ASCENT = 7;
/** Horizontal distance from one glyph to the next, in font units (one blank column between glyphs). */
export const FONT_ADVANCE = 6;
/** Font units per em: a "font size" s draws with max(1, floor(s / FONT_EM)) pixels per unit. */
export const FONT_EM = 8;

/** Pixels per font unit for a requested size; never below 1 so that tiny previews still get a caption. */
export function fontScale(size: number): number {
  return Math.max(1, Math.floor(size / FONT_EM));
}

function glyphRows(ch: string): number[] {
  const code = ch.codePointAt(0) ?? 0x3f;
  const index = (code >= FIRST && code <= LAST ? code : 0x3f) - FIRST;
  return Array.from(GLYPH_TABLE.slice(index * ROWS, (index + 1) * ROWS), (d) => parseInt(d, 32));
}

/** Width in pixels of `text` drawn at `scale` (no trailing blank column). */
export function textWidth(text: string, scale: number): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * FONT_ADVANCE - 1) * scale;
}

/**
 * Calls `plot(x, y)` for every pixel of `text` with its top-left glyph corner at (x, y); the caller clips.
 */
export function rasterizeText(text: string, x: number, y: number, scale: number, plot: (px: number, py: number) => void): void {
  let pen = x;
  for (const ch of text) {
    const rows = glyphRows(ch);
    for (let r = 0; r < ROWS; r++) {
      for (let c = 0; c < COLUMNS; c++) {
        if (!(rows[r]! & (1 << (COLUMNS - 1 - c)))) continue;
        for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) plot(pen + c * scale + dx, y + r * scale + dy);
      }
    }
    pen += FONT_ADVANCE * scale;
  }
}
