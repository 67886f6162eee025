/** A one-line progress bar on stderr (redrawn in place on a terminal, a few plain lines otherwise). */
export interface ProgressBar {
  update(step: number, steps: number, label?: string): void;
  done(): void;
}

export function progressBar(stream: NodeJS.WriteStream = process.stderr, width = 30): ProgressBar {
  const tty = stream.isTTY === true;
  const started = Date.now();
  let lastPercent = -1;
  let drawn = false;
  return {
    update(step, steps, label = '') {
      const fraction = steps > 0 ? Math.min(1, step / steps) : 0;
      const filled = Math.round(fraction * width);
      const elapsed = (Date.now() - started) / 1000;
      const eta = fraction > 0 ? elapsed / fraction - elapsed : 0;
      const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${step}/${steps} ${label}${label ? ' ' : ''}${elapsed.toFixed(1)}s elapsed, ${eta.toFixed(1)}s left`;
      if (tty) {
        stream.write(`\r${line}\x1b[K`);
        drawn = true;
        return;
      }
      const percent = Math.floor(fraction * 4) * 25;
      if (percent !== lastPercent) {
        lastPercent = percent;
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (tty && drawn) stream.write('\n');
    },
  };
}
