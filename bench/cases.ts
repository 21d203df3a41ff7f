// The baseline cases. Each run spawns a fresh bare server, so peak RSS is per run.
import { fileURLToPath } from 'node:url';
import { uploadMultipart } from './baselines/busboyClient.js';
import { uploadOverManySockets, uploadOverOneSocket } from './baselines/wsClient.js';
import { caseNames } from './caseNames.js';
import { measureServer } from './lib/measure.js';
import { registerCase } from './registry.js';

// =============================================================================================
// HUB SUBJECTS ATTACH HERE. Import each file that calls attachSubject(caseNames.X, {...}), e.g.
//   import './hubWs.js';
//   import './hubMultipart.js';
// Import order does not matter: registry.ts merges subjects in when the cases are read.
// =============================================================================================
import './hubWs.js';
import './hubCancel.js';
import './hubSocketIo.js';
import './hubHttp.js';
import './hubLoad.js';
import './clusterThroughput.js';
import './clusterChunkCost.js';
import './clusterResume.js';

const baselineFile = (name: string): string => fileURLToPath(new URL(`./baselines/${name}`, import.meta.url));

registerCase({
  name: caseNames.wsSingle,
  baseline: ({ singleUploadMiB }) =>
    measureServer({ file: baselineFile('wsServer.ts') }, (port, startMeasuring) =>
      uploadOverOneSocket({ url: `ws://127.0.0.1:${port}/`, totalMiB: singleUploadMiB }, startMeasuring),
    ),
});

registerCase({
  name: caseNames.wsConcurrent,
  baseline: () =>
    measureServer({ file: baselineFile('wsServer.ts') }, (port, startMeasuring) =>
      uploadOverManySockets({ url: `ws://127.0.0.1:${port}/`, connections: 100, perConnectionMiB: 4 }, startMeasuring),
    ),
});

registerCase({
  name: caseNames.multipart,
  baseline: ({ singleUploadMiB }) =>
    measureServer({ file: baselineFile('busboyServer.ts') }, (port, startMeasuring) =>
      uploadMultipart({ url: `http://127.0.0.1:${port}/upload`, totalMiB: singleUploadMiB }, startMeasuring),
    ),
});
