/**
 * The stages an application registers, in run order. Which of them run is decided per upload
 * (by `when`) at creation, so the upload phase knows its share of the bar from the first byte.
 *
 * @example
 * const pipeline = new Pipeline().use(gzipStage()).use({ name: 'scan', weight: 2, run: scanFile });
 */
import type { Stage, StageUpload } from './Stage.js';

export type PlannedUpload = Omit<StageUpload, 'sha256'>;

export class Pipeline {
  private readonly stages: Stage[] = [];

  constructor(stages: readonly Stage[] = []) {
    for (const stage of stages) this.use(stage);
  }

  use(stage: Stage): this {
    if (!stage.name) throw new Error('A stage needs a name');
    if (this.stages.some((existing) => existing.name === stage.name)) throw new Error(`Stage ${stage.name} is registered twice`);
    if (stage.weight !== undefined && !(stage.weight > 0)) throw new Error(`Stage ${stage.name}: weight must be > 0`);
    this.stages.push(stage);
    return this;
  }

  /** The stages that run for this upload, in order. */
  plan(upload: PlannedUpload): Stage[] {
    // `when` sees the upload before its sha256 exists; an empty one keeps the type honest.
    const view: StageUpload = { ...upload, sha256: '' };
    const planned: Stage[] = [];
    for (const stage of this.stages) {
      let runs: boolean;
      try {
        runs = stage.when ? stage.when(view) : true;
      } catch (error) {
        // Planning happens inside create() and start(); a faulty `when` must not break those.
        // The stage is planned and fails when it would run, with its name, like any stage error.
        const message = error instanceof Error ? error.message : String(error);
        planned.push({ ...stage, run: () => Promise.reject(new Error(`when() threw: ${message}`)) });
        continue;
      }
      if (runs) planned.push(stage);
    }
    return planned;
  }

  get size(): number {
    return this.stages.length;
  }
}
