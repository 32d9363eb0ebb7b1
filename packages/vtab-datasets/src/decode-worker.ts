/**
 * Worker-thread entry: reads, decodes and preprocesses images so that a training loop on the main
 * thread is not blocked by JPEG/PNG decoding. Built as its own tsup entry (dist/decode-worker.js).
 */
import { parentPort } from 'node:worker_threads';
import { decodeAndPreprocessInto, ImageLoadFailure, readImageBytes } from './image-file.js';
import type { DecodeRequest, DecodeResponse } from './decode-pool.js';

const port = parentPort;
if (!port) throw new Error('decode-worker must be started as a worker thread');

port.on('message', (request: DecodeRequest) => {
  void handle(request).then(
    (response) => port.postMessage(response, response.pixels ? [response.pixels.buffer as ArrayBuffer] : []),
  );
});

async function handle(request: DecodeRequest): Promise<DecodeResponse> {
  try {
    const bytes = await readImageBytes(request.path);
    const { imageSize } = request.params;
    const pixels = new Float32Array(3 * imageSize * imageSize);
    decodeAndPreprocessInto(bytes, request.params, pixels, 0);
    return { id: request.id, pixels };
  } catch (error) {
    if (error instanceof ImageLoadFailure) return { id: request.id, failure: { kind: error.kind, reason: error.message } };
    return { id: request.id, failure: { kind: 'other', reason: error instanceof Error ? error.message : String(error) } };
  }
}
