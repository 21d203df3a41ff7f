import { describe, expect, it } from 'vitest';
import { randomFile, sha256File, startClient, startHub } from '../helpers.js';

describe('smoke', () => {
  it('uploads a small file over ws', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url });
    const file = await randomFile(3 * 1024 * 1024 + 17);
    const upload = client.upload(file.path);
    const result = await upload.done;
    expect(result.sha256).toBe(file.sha256);
    expect(await sha256File(hub.hub.dataPath(result.id))).toBe(file.sha256);
  });
});
