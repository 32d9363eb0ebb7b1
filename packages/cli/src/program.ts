import { REFERENCE_GRID, registeredMethods } from '@vqt/core';
import { Command, Option } from 'commander';
import { demoCommand } from './commands/demo.js';
import { embedCommand } from './commands/embed.js';
import { inspectCommand } from './commands/inspect.js';
import { addCheckpointFlags } from './checkpoint-flags.js';
import { evalCommand } from './commands/eval.js';
import { trainCommand } from './commands/train.js';
import { predictCommand } from './commands/predict.js';
import { registerBenchCommands } from './commands/bench.js';
import { methodChoices, methodFlags } from './methods.js';
import { nonNegativeNumber, numberList, positiveInt } from './options.js';
import { startBackend, type GlobalOptions } from './runtime.js';

export function buildProgram(): Command {
  const program = new Command('vqt')
    .description('Parameter- and memory-efficient transfer learning of Vision Transformers on TensorFlow.js')
    .addOption(new Option('--backend <name>', 'compute backend: auto, node-gpu, node, wasm, cpu (default: $VQT_BACKEND or auto)'))
    .addOption(new Option('--threads <n>', 'wasm threads (default: $VQT_THREADS, else 2 where the machine has them)').argParser(positiveInt))
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
    .addOption(new Option('--features <kind>', 'cls: final normalised CLS [B,D] (of the adapted backbone with --adapter); blocks: every block output [depth,B,1+N,D]; head: the adapter\'s head input [B,F]').choices(['cls', 'blocks', 'head']).default('cls'))
    .option('--adapter <dir>', 'adapter directory of any method (needed for --features head)')
    .option('--batch <n>', 'images per forward pass', positiveInt, 8)
    .action(async (options) => {
      await startBackend(globals());
      await embedCommand(options);
    });

  const train = program
    .command('train')
    .description('train a method (or a stack such as vpt+vqt) on a task folder and save its adapter')
    .addOption(new Option('--method <name>', 'what to train').choices(methodChoices()).default('vqt'))
    .requiredOption('--checkpoint <file>', 'frozen backbone: timm .safetensors or Google ViT .npz')
    .option('--heads <n>', 'attention heads (default dim/64)', positiveInt)
    .requiredOption('--data <dir>', 'task folder: VTAB-1k lists (train800.txt, val200.txt, train800val200.txt, test.txt) or an image-folder tree (train/<class>/*.png|jpg, test/<class>/..., optional val/)')
    .option('--classes <n>', 'class count of a folder outside the task registry (default: labels.txt, else the largest label + 1; the class folders of a tree)', positiveInt)
    .option('--split <name>', 'training split', 'train800val200')
    .option('--eval-split <name>', 'evaluate on this split after training (e.g. test, val200)')
    .option('--epochs <n>', 'epochs', positiveInt, 100)
    .option('--lr <rate>', 'peak learning rate', nonNegativeNumber, 0.05)
    .option('--wd <decay>', 'coupled L2 weight decay', nonNegativeNumber, 1e-4)
    .option('--batch <n>', 'batch size', positiveInt, 32)
    .addOption(new Option('--optimizer <name>', 'optimizer').choices(['adam', 'sgd']).default('adam'))
    .option('--warmup <epochs>', 'linear warmup epochs before the cosine decay', (v) => Math.floor(nonNegativeNumber(v)), 10)
    .option('--seed <n>', 'seed for init, order and dropout', (v) => Math.floor(nonNegativeNumber(v)), 0)
    .requiredOption('--out <dir>', 'adapter directory (also holds the resumable trainer state)')
    .option('--base <dir>', 'for a stack (e.g. vpt+vqt): reuse this trained adapter of its base method instead of fitting it')
    .option('--joint', 'for a stack: train both methods together (backbone on the tape) instead of two-stage')
    .option('--resume', 'continue a killed run from <out>/trainer_state.safetensors')
    .option('--protocol', 'VTAB protocol: pick lr x wd on val200 after training on train800, retrain on train800val200, report test')
    .option('--lr-grid <list>', 'learning rates for --protocol (default: 1,0.5,0.25,0.1,0.05 x batch/256)', numberList)
    .option('--wd-grid <list>', 'weight decays for --protocol (default: 0.01,0.001,0.0001,0)', numberList)
    .option('--cache-budget <MiB>', 'feature cache memory before spilling to disk (VQT)', positiveInt, 1024)
    .option('--cache-dir <dir>', 'where the feature cache spills (VQT)')
    .option('--spill-float16', 'store spilled cache rows as float16 (VQT)')
    .addOption(new Option('--checkpointing <mode>', 'per-block gradient checkpointing when training through the backbone').choices(['auto', 'on', 'off']).default('auto'))
    .addOption(new Option('--normalization <kind>', 'image normalisation').choices(['imagenet', 'inception']).default('imagenet'))
    .addOption(new Option('--progress <kind>', 'progress output').choices(['auto', 'bar', 'lines', 'none']).default('auto'));
  // Each method's own options, from the registry; a flag the chosen method does not take is an error.
  for (const { option, methods } of methodFlags()) {
    const argument = option.kind === 'intList' || option.kind === 'stringList' ? 'list' : option.kind === 'choice' ? 'name' : 'value';
    const flag = new Option(`--${option.flag} <${argument}>`, `${option.description} [${methods.join(', ')}]`);
    train.addOption(option.kind === 'choice' && option.choices ? flag.choices([...option.choices]) : flag);
  }
  train.addHelpText('after', () => `\nMethods:\n${registeredMethods().map((m) => `  ${m.name.padEnd(14)}${m.description}`).join('\n')}\n  <base>+<top>   a stack: <top> (e.g. vqt) on a frozen, already fitted adapting <base>\n`);
  train.action(async (options) => {
    await startBackend(globals());
    const scale = options.batch / 256;
    await trainCommand({
      ...options,
      lrGrid: options.protocol ? (options.lrGrid ?? REFERENCE_GRID.lr.map((lr: number) => lr * scale)) : undefined,
      wdGrid: options.protocol ? (options.wdGrid ?? REFERENCE_GRID.weightDecay) : undefined,
    });
  });

  program
    .command('eval')
    .description('top-1 accuracy of a trained adapter on a split; prints it and writes JSON')
    .requiredOption('--checkpoint <file>', 'the backbone the adapter was trained on')
    .option('--heads <n>', 'attention heads (default: the adapter\'s record)', positiveInt)
    .requiredOption('--adapter <dir>', 'adapter directory')
    .requiredOption('--data <dir>', 'task folder (VTAB-1k lists or an image-folder tree)')
    .option('--classes <n>', 'class count of the folder (default: the adapter\'s)', positiveInt)
    .option('--split <name>', 'split to evaluate', 'test')
    .option('--batch <n>', 'batch size', positiveInt, 32)
    .option('--json <file>', 'where to write the result (default <adapter>/eval_<split>.json)')
    .addOption(new Option('--normalization <kind>', 'image normalisation').choices(['imagenet', 'inception']).default('imagenet'))
    .action(async (options) => {
      await startBackend(globals());
      await evalCommand(options);
    });

  program
    .command('predict')
    .description('top-k classes with probabilities for images, with any method\'s adapter')
    .argument('<images...>', 'image files (.png, .jpg), directories or globs')
    .requiredOption('--checkpoint <file>', 'the backbone the adapter was trained on')
    .option('--heads <n>', 'attention heads (default: the adapter\'s record)', positiveInt)
    .requiredOption('--adapter <dir>', 'adapter directory')
    .option('--top <k>', 'classes per image', positiveInt, 5)
    .option('--batch <n>', 'images per forward pass', positiveInt, 16)
    .option('--json', 'print JSON instead of a table')
    .addOption(new Option('--normalization <kind>', 'image normalisation (default: what the adapter was trained with)').choices(['imagenet', 'inception']))
    .action(async (images: string[], options) => {
      await startBackend(globals());
      await predictCommand(images, options);
    });

  program
    .command('demo')
    .description('VQT vs a linear probe on the embedded backbone over one offline mini-suite task')
    .option('--task <name>', 'mini-suite task', 'dsprites_loc')
    .option('--epochs <n>', 'epochs', positiveInt, 30)
    .option('--lr <rate>', 'peak learning rate', nonNegativeNumber, 0.01)
    .option('--batch <n>', 'batch size', positiveInt, 32)
    .option('--queries <n>', 'VQT query tokens per block', positiveInt, 1)
    .option('--seed <n>', 'seed', (v) => Math.floor(nonNegativeNumber(v)), 0)
    .action(async (options) => {
      const backend = await startBackend(globals());
      await demoCommand(options, backend);
    });

  registerBenchCommands(program, globals);

  return addCheckpointFlags(program);
}
