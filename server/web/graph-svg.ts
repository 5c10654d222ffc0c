import { instance, Viz } from '@viz-js/viz';
import { machineGraph, overviewGraph, toDot, toOverviewDot } from '../../machines/graph';

const CACHE_SIZE = 32;

/** The whole machine, or only its top-level states (machines/graph.ts's overview). */
export type GraphView = 'full' | 'compact';

export const GRAPH_VIEWS: readonly GraphView[] = ['compact', 'full'];

const CLASS: Record<GraphView, string> = { full: 'state-graph', compact: 'state-overview' };

/**
 * The machine's graph drawn on this server with Graphviz compiled to WebAssembly (no outside
 * service, no script in the page): machines/graph.ts's DOT, with the current states filled, as SVG.
 * The current states' groups also get the class "current" so that a stylesheet or a test can find
 * them. A drawing takes ~100 ms; drawings are kept by view and set of current states.
 */
export class GraphRenderer {
  private viz: Promise<Viz> | null = null;
  private readonly cache = new Map<string, string>();

  async svg(currentStateIds: readonly string[], view: GraphView = 'full'): Promise<string> {
    const ids = [...new Set(currentStateIds)].sort();
    const key = `${view}:${ids.join(' ')}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    this.viz ??= instance();
    const graph = machineGraph(ids);
    const dot = view === 'full' ? toDot(graph) : toOverviewDot(graph);
    const raw = (await this.viz).renderString(dot, { format: 'svg' });
    // The overview's nodes are named by the top-level states' keys.
    const current =
      view === 'full'
        ? new Set(ids)
        : new Set(
            overviewGraph(graph)
              .nodes.filter((node) => node.current)
              .map((node) => node.key),
          );
    const svg = markCurrent(raw, current, CLASS[view]);
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, svg);
    return svg;
  }
}

/** Inline-ready SVG: no XML prolog, sized by the page, current states classed. */
export function markCurrent(svg: string, current: ReadonlySet<string>, className = 'state-graph'): string {
  const label = className === 'state-graph' ? 'The lifecycle state machine, current state marked' : 'The lifecycle’s top-level states, current state marked';
  return svg
    .replace(/^[\s\S]*?(?=<svg\b)/, '')
    .replace(/<!--[\s\S]*?-->\n?/g, '')
    .replace(/<svg width="[^"]*" height="[^"]*"/, `<svg class="${className}" role="img" aria-label="${label}"`)
    .replace(/<g id="([^"]+)" class="(node|cluster)">\n<title>([^<]*)<\/title>/g, (match, id: string, kind: string, title: string) => {
      const state = kind === 'cluster' ? title.replace(/^cluster_/, '') : title;
      if (!current.has(state)) return match;
      return `<g id="${id}" class="${kind} current" data-state="${state}">\n<title>${title}</title>`;
    });
}
