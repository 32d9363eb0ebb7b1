import { meanOver, type VariantSummary } from './report.js';

/** Fonts resvg finds on Debian (fonts-dejavu-core); any installed sans-serif works when it is missing. */
const FONT = 'DejaVu Sans';

export interface RenderedChart {
  svg: string;
  png: Uint8Array;
}

/**
 * Compiles a Vega-Lite spec with vega-lite, renders it headless with vega to SVG, and rasterises
 * the SVG with resvg (2x). Everything runs offline; only system fonts are read.
 */
export async function renderChart(spec: Record<string, unknown>): Promise<RenderedChart> {
  const vegaLite = await import('vega-lite');
  const vega = await import('vega');
  const { Resvg } = await import('@resvg/resvg-js');
  const compiled = vegaLite.compile({ config: { font: FONT, background: 'white' }, ...spec } as Parameters<typeof vegaLite.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, background: 'white', font: { loadSystemFonts: true, defaultFontFamily: FONT } }).render().asPng();
    return { svg, png: new Uint8Array(png) };
  } finally {
    view.finalize();
  }
}

export interface ChartPoint {
  method: string;
  label: string;
  x: number;
  y: number;
}

/** Fig. 3b: mean test top-1 against peak training-step memory; adapting methods as lines over their last-k-block variants. */
export function accuracyMemoryPoints(variants: VariantSummary[], tasks: string[]): ChartPoint[] {
  const points: ChartPoint[] = [];
  const swept = new Set(variants.filter((v) => v.purpose === 'last-blocks').map((v) => v.method));
  for (const v of variants) {
    if (v.purpose === 'queries' || typeof v.peakStepBytes !== 'number') continue;
    const y = meanOver(v, tasks);
    if (y === undefined) continue;
    const label = v.purpose === 'table' && swept.has(v.method) ? `${v.label} (all blocks)` : v.label;
    points.push({ method: v.method, label, x: v.peakStepBytes / 2 ** 20, y: 100 * y });
  }
  return points;
}

/** Fig. 6b: mean test top-1 against the number of queries T. */
export function accuracyQueriesPoints(variants: VariantSummary[], tasks: string[], defaultQueries: (method: string) => number | undefined): ChartPoint[] {
  const points: ChartPoint[] = [];
  const swept = new Set(variants.filter((v) => v.purpose === 'queries').map((v) => v.method));
  for (const v of variants) {
    if (!swept.has(v.method) || (v.purpose !== 'queries' && v.purpose !== 'table')) continue;
    const t = v.purpose === 'queries' ? v.sweep : defaultQueries(v.method);
    const y = meanOver(v, tasks);
    if (t === undefined || y === undefined) continue;
    points.push({ method: v.method, label: v.label, x: t, y: 100 * y });
  }
  return points.sort((a, b) => a.x - b.x);
}

export function accuracyMemorySpec(points: ChartPoint[], subtitle: string): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Accuracy vs training memory', subtitle },
    width: 480,
    height: 320,
    data: { values: points },
    layer: [
      {
        mark: { type: 'line', point: { size: 70 } },
        encoding: {
          x: { field: 'x', type: 'quantitative', title: 'peak training-step memory (MiB)', scale: { type: 'log' } },
          y: { field: 'y', type: 'quantitative', title: 'mean test top-1 (%)', scale: { zero: false }, axis: { format: '.1f' } },
          color: { field: 'method', type: 'nominal', title: 'method' },
          order: { field: 'x', type: 'quantitative' },
        },
      },
      {
        mark: { type: 'text', dx: 6, dy: -8, align: 'left', fontSize: 10 },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } },
      },
    ],
  };
}

export function accuracyQueriesSpec(points: ChartPoint[], subtitle: string): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Accuracy vs number of queries T', subtitle },
    width: 480,
    height: 320,
    data: { values: points },
    mark: { type: 'line', point: { size: 70 } },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'query tokens per block (T)', scale: { type: 'log', base: 2 }, axis: { values: [...new Set(points.map((p) => p.x))] } },
      y: { field: 'y', type: 'quantitative', title: 'mean test top-1 (%)', scale: { zero: false }, axis: { format: '.1f' } },
      color: { field: 'method', type: 'nominal', title: 'method' },
    },
  };
}
