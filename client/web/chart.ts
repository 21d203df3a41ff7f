/**
 * The dashboard's throughput chart: an SVG area drawn from the series' points — no library, no
 * canvas — so styles.css colours it, it scales with the page, and a screen reader gets a
 * sentence (now and peak) instead of pixels. The drawn data are on the element for tests and
 * tools: `data-points` (seconds drawn), `data-total-bytes` (bytes in them), `data-peak` (bytes/s).
 */
import { formatBytes } from './format.js';
import type { ThroughputPoint } from './throughput.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
/** Drawing units; the SVG stretches to its box (preserveAspectRatio none), strokes do not. */
const WIDTH = 600;
const HEIGHT = 150;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

const STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500] as const;
const UNITS = [1024, 1024 ** 2, 1024 ** 3, 1024 ** 4] as const;

/** The top of the axis: the smallest 1, 2 or 5 × 10^n KiB/MiB/GiB per second at or above `peak`, so it reads round. */
export function niceScale(peak: number): number {
  for (const unit of UNITS) for (const step of STEPS) if (step * unit >= peak) return step * unit;
  return peak;
}

export class ThroughputChart {
  private readonly area: SVGPathElement;
  private readonly line: SVGPathElement;
  private readonly graphic: SVGSVGElement;

  /**
   * `figure` gets the SVG; `scaleLabel` the top of the axis; `caption` the sentence.
   * `windowMs`: the time the chart's width stands for.
   */
  constructor(private readonly figure: HTMLElement, private readonly scaleLabel: HTMLElement, private readonly caption: HTMLElement, private readonly windowMs: number) {
    this.graphic = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', class: 'chart-svg', role: 'img', focusable: 'false' });
    for (const fraction of [0.25, 0.5, 0.75]) {
      this.graphic.append(svg('line', { x1: 0, x2: WIDTH, y1: HEIGHT * fraction, y2: HEIGHT * fraction, class: 'chart-grid', 'vector-effect': 'non-scaling-stroke' }));
    }
    this.area = svg('path', { class: 'chart-area', d: '' });
    this.line = svg('path', { class: 'chart-line', d: '', fill: 'none', 'vector-effect': 'non-scaling-stroke' });
    this.graphic.append(this.area, this.line);
    figure.prepend(this.graphic);
    this.draw([], 0);
  }

  /** Draws `points` (one per second, oldest first) with the newest at the right edge. */
  draw(points: readonly ThroughputPoint[], nowRate: number): void {
    let peak = 0;
    let totalBytes = 0;
    const bucketMs = points.length > 1 ? (points[1] as ThroughputPoint).at - (points[0] as ThroughputPoint).at : 1000;
    for (const point of points) {
      peak = Math.max(peak, point.bytesPerSecond);
      totalBytes += (point.bytesPerSecond * bucketMs) / 1000;
    }
    // A little headroom, so the peak does not touch the top.
    const scale = niceScale(peak * 1.1);
    const last = points.at(-1);
    const end = last === undefined ? 0 : last.at + bucketMs;
    const x = (at: number) => (WIDTH * (at - (end - this.windowMs))) / this.windowMs;
    const y = (rate: number) => HEIGHT - (HEIGHT * rate) / scale;
    // A step per second: a second's bytes are spread over it, not drawn at one instant.
    const path = points.map((point) => `L${x(point.at).toFixed(1)},${y(point.bytesPerSecond).toFixed(1)}H${x(point.at + bucketMs).toFixed(1)}`).join('');
    if (points.length === 0 || last === undefined) {
      this.line.setAttribute('d', '');
      this.area.setAttribute('d', '');
    } else {
      const start = x((points[0] as ThroughputPoint).at).toFixed(1);
      this.line.setAttribute('d', `M${start},${HEIGHT}${path}`);
      this.area.setAttribute('d', `M${start},${HEIGHT}${path}V${HEIGHT}Z`);
    }
    this.figure.dataset.points = String(points.length);
    this.figure.dataset.totalBytes = String(Math.round(totalBytes));
    this.figure.dataset.peak = String(Math.round(peak));
    this.scaleLabel.textContent = `${formatBytes(scale)}/s`;
    const sentence = `Now ${formatBytes(nowRate)}/s, peak ${formatBytes(peak)}/s over the last ${Math.round(this.windowMs / 60_000)} min`;
    this.caption.textContent = sentence;
    this.graphic.setAttribute('aria-label', `Aggregate upload throughput. ${sentence}.`);
  }
}
