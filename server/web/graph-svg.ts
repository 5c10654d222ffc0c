import { instance, Viz } from '@viz-js/viz';
import { machineGraph, toDot } from '../../machines/graph';

const CACHE_SIZE = 32;

/**
 * The machine's graph drawn on this server with Graphviz compiled to WebAssembly (no outside
 * service, no script in the page): machines/graph.ts's DOT, with the current states filled, as SVG.
 * The current states' groups also get the class "current" so that a stylesheet or a test can find
 * them. A drawing takes ~100 ms; drawings are kept by the set of current states.
 */
export class GraphRenderer {
  private viz: Promise<Viz> | null = null;
  private readonly cache = new Map<string, string>();

  async svg(currentStateIds: readonly string[]): Promise<string> {
    const ids = [...new Set(currentStateIds)].sort();
    const key = ids.join(' ');
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    this.viz ??= instance();
    const raw = (await this.viz).renderString(toDot(machineGraph(ids)), { format: 'svg' });
    const svg = markCurrent(raw, new Set(ids));
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, svg);
    return svg;
  }
}

/** Inline-ready SVG: no XML prolog, sized by the page, current states classed. */
export function markCurrent(svg: string, current: ReadonlySet<string>): string {
  return svg
    .replace(/^[\s\S]*?(?=<svg\b)/, '')
    .replace(/<!--[\s\S]*?-->\n?/g, '')
    .replace(/<svg width="[^"]*" height="[^"]*"/, '<svg class="state-graph" role="img" aria-label="The lifecycle state machine, current state marked"')
    .replace(/<g id="([^"]+)" class="(node|cluster)">\n<title>([^<]*)<\/title>/g, (match, id: string, kind: string, title: string) => {
      const state = kind === 'cluster' ? title.replace(/^cluster_/, '') : title;
      if (!current.has(state)) return match;
      return `<g id="${id}" class="${kind} current" data-state="${state}">\n<title>${title}</title>`;
    });
}
