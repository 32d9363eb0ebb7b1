import { Command, Option } from 'commander';
import { embedCommand } from './commands/embed.js';
import { inspectCommand } from './commands/inspect.js';
import { positiveInt } from './options.js';
import { startBackend, type GlobalOptions } from './runtime.js';

export function buildProgram(): Command {
  const program = new Command('vqt')
    .description('Parameter- and memory-efficient transfer learning of Vision Transformers on TensorFlow.js')
    .addOption(new Option('--backend <name>', 'compute backend: auto, node-gpu, node, wasm, cpu (default: $VQT_BACKEND or auto)'))
    .addOption(new Option('--threads <n>', 'wasm threads (default: $VQT_THREADS or 1)').argParser(positiveInt))
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(text.split('\n')[0] + '\n') });

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  program
    .command('inspect')
    .description('print a checkpoint\'s architecture, parameter count and format')
    .argument('<file>', 'timm .safetensors or Google ViT .npz')
    .option('--heads <n>', 'attention heads (shapes do not tell; default dim/64)', positiveInt)
    .option('--json', 'machine-readable output')
    .action((file: string, options: { heads?: number; json?: boolean }) => inspectCommand(file, options));

  program
    .command('embed')
    .description('run the frozen backbone (or a trained adapter) on images from an .npy file')
    .requiredOption('--checkpoint <file>', 'timm .safetensors or Google ViT .npz')
    .option('--heads <n>', 'attention heads (default dim/64)', positiveInt)
    .requiredOption('--input <file>', 'float32 .npy [B,3,H,W], already normalised')
    .requiredOption('--out <file>', 'output .npy')
    .addOption(new Option('--features <kind>', 'cls: final normalised CLS [B,D]; blocks: every block output [depth,B,1+N,D]; head: the adapter\'s head input [B,F]').choices(['cls', 'blocks', 'head']).default('cls'))
    .option('--adapter <dir>', 'adapter directory (for --features head)')
    .option('--batch <n>', 'images per forward pass', positiveInt, 8)
    .action(async (options) => {
      await startBackend(globals());
      await embedCommand(options);
    });

  return program;
}
