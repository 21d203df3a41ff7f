// One bar from 0 to 100 across upload and processing: the math both sides share, and how the
// shared throttle treats the phase change and the end.
import { describe, expect, it } from 'vitest';
import type { HubEvent, ProgressEvent } from '../../shared/messages.js';
import { processingPercent, uploadPercent, type ProgressPlan } from '../../shared/progress.js';
import { EventThrottle } from '../../shared/throttle.js';

describe('combined progress math', () => {
  it('gives the upload the whole bar when nothing runs after it', () => {
    const plan: ProgressPlan = { uploadShare: 50, stageWeights: [] };
    expect(uploadPercent(plan, 0, 1000)).toBe(0);
    expect(uploadPercent(plan, 500, 1000)).toBe(50);
    expect(uploadPercent(plan, 1000, 1000)).toBe(100);
    expect(processingPercent(plan, 0, 0)).toBe(100);
  });

  it('maps the upload to uploadShare and the stages to the rest by weight', () => {
    const plan: ProgressPlan = { uploadShare: 50, stageWeights: [1, 3] };
    expect(uploadPercent(plan, 1000, 1000)).toBe(50);
    expect(processingPercent(plan, 0, 0)).toBe(50);
    expect(processingPercent(plan, 0, 1)).toBe(62.5);
    expect(processingPercent(plan, 1, 0)).toBe(62.5);
    expect(processingPercent(plan, 1, 0.5)).toBe(81.25);
    expect(processingPercent(plan, 1, 1)).toBe(100);
    const small: ProgressPlan = { uploadShare: 20, stageWeights: [1] };
    expect(uploadPercent(small, 1, 2)).toBe(10);
    expect(processingPercent(small, 0, 0.5)).toBe(60);
  });

  it('never goes back over a whole life, and ends at exactly 100', () => {
    for (const plan of [
      { uploadShare: 50, stageWeights: [1, 3, 0.5] },
      { uploadShare: 10, stageWeights: [2] },
      { uploadShare: 90, stageWeights: [1, 1] },
      { uploadShare: 0, stageWeights: [1] },
      { uploadShare: 100, stageWeights: [1] },
    ] satisfies ProgressPlan[]) {
      const values: number[] = [];
      for (let bytes = 0; bytes <= 977; bytes += 61) values.push(uploadPercent(plan, bytes, 977));
      values.push(uploadPercent(plan, 977, 977));
      plan.stageWeights.forEach((_, stage) => {
        for (let step = 0; step <= 7; step++) values.push(processingPercent(plan, stage, step / 7));
      });
      for (let i = 1; i < values.length; i++) expect(values[i], JSON.stringify(plan)).toBeGreaterThanOrEqual(values[i - 1] as number);
      expect(values[0]).toBe(0);
      expect(values.at(-1)).toBe(100);
      expect(values.every((v) => v >= 0 && v <= 100)).toBe(true);
    }
  });

  it('clamps out-of-range stage fractions', () => {
    const plan: ProgressPlan = { uploadShare: 50, stageWeights: [1] };
    expect(processingPercent(plan, 0, -1)).toBe(50);
    expect(processingPercent(plan, 0, 7)).toBe(100);
  });
});

describe('throttle at the phase change', () => {
  let id = 0;
  const progress = (percent: number, phase: ProgressEvent['phase'], stage?: string): ProgressEvent => {
    const event: ProgressEvent = {
      id: ++id, uploadId: 'upload-aaaa', at: 0, type: 'progress', bytes: 0, total: 100, percent, phase, bytesPerSecond: 0, etaSeconds: null,
    };
    if (stage !== undefined) {
      event.stage = stage;
      event.stagePercent = 0;
    }
    return event;
  };

  it('always lets the first processing progress and the 100 % one through, in order', () => {
    const out: HubEvent[] = [];
    const throttle = new EventThrottle((event) => out.push(event), { intervalMs: 1000, minStepPercent: 1 }, () => false, () => 0);
    const last = (): string => {
      const event = out.at(-1);
      return event?.type === 'progress' ? `${event.phase}:${event.percent}` : String(event?.type);
    };
    throttle.push(progress(10, 'upload'));
    expect(last()).toBe('upload:10');
    throttle.push(progress(30, 'upload')); // inside the interval: may be held
    throttle.push(progress(50, 'processing', 'scan'));
    expect(last()).toBe('processing:50'); // a phase change is never held
    throttle.push(progress(75, 'processing', 'scan'));
    throttle.push(progress(100, 'processing', 'scan'));
    expect(last()).toBe('processing:100'); // nor is the end
    const percents = out.map((e) => (e.type === 'progress' ? e.percent : -1));
    for (let i = 1; i < percents.length; i++) expect(percents[i]).toBeGreaterThan(percents[i - 1] as number);
    throttle.close();
  });
});
