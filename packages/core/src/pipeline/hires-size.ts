/**
 * The size hires fix samples its second pass at (A1111's calculate_target_resolution): `hr_scale` times the first
 * pass, or `hr_resize_x`/`hr_resize_y`, the missing side kept in proportion; with both given the image is made to
 * cover them and the latent is cropped afterwards by `truncateX`/`truncateY` latent pixels.
 */
export interface HiresSizeRequest {
  readonly width: number;
  readonly height: number;
  readonly hr_scale: number;
  readonly hr_resize_x: number;
  readonly hr_resize_y: number;
}

export interface HiresSize {
  readonly width: number;
  readonly height: number;
  readonly truncateX: number;
  readonly truncateY: number;
}

export function hiresSize(p: HiresSizeRequest): HiresSize {
  if (p.hr_resize_x === 0 && p.hr_resize_y === 0) {
    return { width: Math.trunc(p.width * p.hr_scale), height: Math.trunc(p.height * p.hr_scale), truncateX: 0, truncateY: 0 };
  }
  if (p.hr_resize_y === 0) return { width: p.hr_resize_x, height: Math.floor((p.hr_resize_x * p.height) / p.width), truncateX: 0, truncateY: 0 };
  if (p.hr_resize_x === 0) return { width: Math.floor((p.hr_resize_y * p.width) / p.height), height: p.hr_resize_y, truncateX: 0, truncateY: 0 };
  const [width, height] = p.width / p.height < p.hr_resize_x / p.hr_resize_y
    ? [p.hr_resize_x, Math.floor((p.hr_resize_x * p.height) / p.width)]
    : [Math.floor((p.hr_resize_y * p.width) / p.height), p.hr_resize_y];
  return { width, height, truncateX: Math.floor((width - p.hr_resize_x) / 8), truncateY: Math.floor((height - p.hr_resize_y) / 8) };
}
