import { describe, expect, it } from 'vitest';
import { accuracyMemoryPoints, accuracyMemorySpec, renderChart } from '../src/plot.js';
import type { VariantSummary } from '../src/report.js';

const variant = (label: string, method: string, purpose: VariantSummary['purpose'], mib: number | null, top1: number, sweep?: number): VariantSummary => ({
  label,
  method,
  purpose,
  ...(sweep !== undefined ? { sweep } : {}),
  tasks: { a: { mean: top1, std: 0, n: 1 } },
  groups: {},
  mean: top1,
  peakStepBytes: mib === null ? null : mib * 2 ** 20,
  seconds: 1,
});

describe('plots', () => {
  it('places each measured variant at (memory, accuracy) and leaves out methods without SGD steps', () => {
    const points = accuracyMemoryPoints(
      [variant('vqt', 'vqt', 'table', 5, 0.6), variant('vpt', 'vpt', 'table', 40, 0.7), variant('vpt last 2', 'vpt', 'last-blocks', 12, 0.5, 2), variant('head2toe', 'head2toe', 'table', null, 0.5)],
      ['a'],
    );
    expect(points).toEqual([
      { method: 'vqt', label: 'vqt', x: 5, y: 60 },
      { method: 'vpt', label: 'vpt (all blocks)', x: 40, y: 70 },
      { method: 'vpt', label: 'vpt last 2', x: 12, y: 50 },
    ]);
  });

  it('renders a real SVG and PNG offline', async () => {
    const points = accuracyMemoryPoints([variant('vqt', 'vqt', 'table', 5, 0.6), variant('linear', 'linear', 'table', 0.1, 0.4), variant('vpt', 'vpt', 'table', 40, 0.7)], ['a']);
    const { svg, png } = await renderChart(accuracyMemorySpec(points, 'test subtitle'));
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('Accuracy vs training memory');
    expect(svg.length).toBeGreaterThan(5000);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // IHDR: width and height at 2x of a chart a few hundred pixels wide.
    const view = new DataView(png.buffer, png.byteOffset);
    expect(view.getUint32(16)).toBeGreaterThan(600);
    expect(view.getUint32(20)).toBeGreaterThan(400);
    expect(png.length).toBeGreaterThan(10_000);
  });
});
