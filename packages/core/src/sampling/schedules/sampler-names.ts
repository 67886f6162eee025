/** A1111's sampler aliases (SamplerData.aliases) for lower-case API lookups such as `k_euler_a`. */
const ALIASES: Readonly<Record<string, readonly string[]>> = {
  'DPM++ 2M': ['k_dpmpp_2m'],
  'DPM++ SDE': ['k_dpmpp_sde'],
  'DPM++ 2M SDE': ['k_dpmpp_2m_sde'],
  'DPM++ 2M SDE Heun': ['k_dpmpp_2m_sde_heun'],
  'DPM++ 2S a': ['k_dpmpp_2s_a'],
  'DPM++ 3M SDE': ['k_dpmpp_3m_sde'],
  'Euler a': ['k_euler_a', 'k_euler_ancestral'],
  Euler: ['k_euler'],
  LMS: ['k_lms'],
  Heun: ['k_heun'],
  DPM2: ['k_dpm_2'],
  'DPM2 a': ['k_dpm_2_a'],
  'DPM fast': ['k_dpm_fast'],
  'DPM adaptive': ['k_dpm_ad'],
  Restart: ['restart'],
  DDIM: ['ddim'],
  'DDIM CFG++': ['ddim_cfgpp'],
  PLMS: ['plms'],
  UniPC: ['unipc'],
  LCM: ['k_lcm'],
};

/** sd_samplers.samplers_map: a lower-cased display name or alias to the display name. */
export function samplerNameFromAlias(name: string): string | undefined {
  const key = name.toLowerCase();
  for (const [display, aliases] of Object.entries(ALIASES)) {
    if (display.toLowerCase() === key || aliases.some((a) => a.toLowerCase() === key)) return display;
  }
  return undefined;
}
