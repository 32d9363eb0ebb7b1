import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EMBEDDED_BACKBONE_FILE = 'vit_mini_fmnist_p8_64.safetensors';

/**
 * The small ViT this package ships (pretrained by tools/pretrain on Fashion-MNIST, which is not
 * part of the mini suite; see backbone/MODEL_CARD.md). Its head count is in the file's metadata.
 */
export function embeddedBackbone(): { file: string; modelCard: string } {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/ and src/ both sit one level below the package root.
  const dir = join(here, '..', 'backbone');
  const file = join(dir, EMBEDDED_BACKBONE_FILE);
  if (!existsSync(file)) throw new Error(`${file}: the embedded backbone is missing from this install`);
  return { file, modelCard: join(dir, 'MODEL_CARD.md') };
}
