import type { Command } from 'commander';
import { printJson } from '../output.js';

/** `braggflow model list|info`: the registry of named PeakNet configurations, counted from built graphs. */
export function register(program: Command): void {
  const model = program
    .command('model')
    .description('PeakNet model configurations: list, parameter counts, FLOPs');

  model
    .command('list')
    .description('List the registered PeakNet configurations with their parameter counts')
    .option('--json', 'print JSON for scripts')
    .action(async (options: { json?: boolean }) => {
      const { REGISTERED_MODELS, buildPeakNet } = await import('../../nn/models/registry.js');
      // Graphs are built without allocating weights, so even the 673M-parameter model costs milliseconds.
      const rows = REGISTERED_MODELS.map((name) => ({ name, params: buildPeakNet(name).graph.paramCount() }));
      if (options.json) {
        printJson(rows);
        return;
      }
      const width = Math.max(...rows.map((r) => r.name.length));
      for (const row of rows)
        process.stdout.write(
          `${row.name.padEnd(width)}  ${row.params.toLocaleString('en-US').padStart(13)}\n`,
        );
    });

  model
    .command('info')
    .description('Parameter counts per component and forward GFLOP per megapixel of a PeakNet configuration')
    .argument('<name>', 'e.g. peaknet-atto-1x32-h32 (see `braggflow model list`), or a model file M.onnx')
    .option('--json', 'print JSON for scripts')
    .action(async (name: string, options: { json?: boolean }) => {
      if (name.toLowerCase().endsWith('.onnx')) {
        const { readModelFile } = await import('../../infer/model-file.js');
        const { meta, dynamicBatch } = readModelFile(name);
        if (options.json) {
          printJson(meta);
          return;
        }
        const batch = dynamicBatch ? 'any batch' : 'batch 1 (rebuilt per batch when served)';
        const p = meta.provenance;
        process.stdout.write(
          `${name}: ${meta.config.name}, ${meta.params.toLocaleString('en-US')} params, ${meta.precision ?? 'fp32'}, ${batch}, model format ${meta.formatVersion}\n` +
            `input      ${meta.preprocessing.kind} (clip ${meta.preprocessing.clipSigma} sigma x ${meta.preprocessing.clipIterations}), tile ${meta.tile.heightPx}x${meta.tile.widthPx}, overlap ${meta.tile.overlapPx} px, per panel${meta.tile.maxPx === undefined ? '' : `, panel-fitted up to ${meta.tile.maxPx} px`}\n` +
            `decision   logit margin > ${meta.decision.marginLogit}, components >= ${meta.decision.minPixels} px${meta.decision.chosenBy ? ` (${meta.decision.chosenBy})` : ''}\n` +
            (meta.truthMinSnr === undefined
              ? ''
              : `spots      what it reports: expected integrated SNR >= ${meta.truthMinSnr} (its training truth)\n`) +
            `trained    ${p.steps} steps, ${p.wallSeconds.toFixed(0)} s, ${p.date}, braggflow ${p.braggflowVersion}; data: ${p.data}\n`,
        );
        return;
      }
      const { modelInfo } = await import('../../nn/models/registry.js');
      const info = modelInfo(name);
      const summary = {
        name: info.name,
        params: info.params,
        backboneParams: info.backboneParams,
        neckParams: info.neckParams,
        headParams: info.headParams,
        gflopsPerMpix: Number(info.gflopsPerMpix.toFixed(3)),
        config: info.config,
      };
      if (options.json) {
        printJson(summary);
        return;
      }
      for (const [key, value] of Object.entries(summary)) {
        const text =
          typeof value === 'number'
            ? value.toLocaleString('en-US')
            : typeof value === 'object'
              ? JSON.stringify(value)
              : value;
        process.stdout.write(`${key}: ${text}\n`);
      }
      process.stdout.write('(neck = adapters + BiFPN; GFLOP/Mpix = 2 x MACs of conv and matmul ops)\n');
    });
}
