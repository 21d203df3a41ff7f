/** The example stages `npm start` enables, so a newcomer sees both phases of the bar move. */
import { Pipeline } from '../processing/Pipeline.js';
import { gzipStage } from './gzip.js';
import { importRowsStage } from './importRows.js';

export { gzipStage, importRowsStage };

export function defaultPipeline(): Pipeline {
  return new Pipeline([importRowsStage(), gzipStage()]);
}
