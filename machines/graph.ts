import type { AnyStateNode } from 'xstate';
import { lifecycleMachine } from './lifecycle-machine';

/**
 * The machine as a graph, for the CLI's `graph` and the web visualizer: every state (with its
 * Trustpoint wizard name and the effect it runs), every transition (with its event and guard), the
 * current configuration marked. Drawn locally: DOT for Graphviz, Mermaid, or JSON.
 */
export interface GraphNode {
  id: string;
  key: string;
  parent: string | null;
  atomic: boolean;
  wizardState: string | null;
  effect: string | null;
  current: boolean;
}

export interface GraphEdge {
  from: string;
  to: string;
  event: string;
  guard: string | null;
  kind: 'event' | 'always' | 'done' | 'error' | 'any-state';
}

export interface MachineGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

const ROOT = 'lifecycle';

/** The machine invokes its effects by name (setup's `actors`); an inline actor would show its id. */
function effectName(invoke: AnyStateNode['invoke'][number]): string {
  return typeof invoke.src === 'string' ? invoke.src : invoke.id;
}

export function machineGraph(currentStateIds: Iterable<string> = []): MachineGraph {
  const current = new Set(currentStateIds);
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];

  const visit = (node: AnyStateNode, parent: string | null): void => {
    const children = Object.values(node.states) as AnyStateNode[];
    if (node.id !== ROOT) {
      const invoke = node.invoke[0];
      nodes.push({
        id: node.id,
        key: node.key,
        parent: parent === ROOT ? null : parent,
        atomic: children.length === 0,
        wizardState: (node.meta as { wizardState?: string } | undefined)?.wizardState ?? null,
        effect: invoke ? effectName(invoke) : null,
        current: current.has(node.id),
      });
    }
    for (const [eventType, transitions] of node.transitions) {
      for (const t of transitions) {
        for (const target of t.target ?? []) {
          const kind = eventType.startsWith('xstate.done.actor') ? 'done' : eventType.startsWith('xstate.error.actor') ? 'error' : node.id === ROOT ? 'any-state' : 'event';
          const effect = node.invoke[0] ? effectName(node.invoke[0]) : '';
          const event = kind === 'done' ? `${effect} done` : kind === 'error' ? `${effect} failed` : eventType;
          edges.push({ from: node.id, to: target.id, event, guard: guardName(t.guard), kind });
        }
      }
    }
    for (const t of node.always ?? []) {
      for (const target of t.target ?? []) edges.push({ from: node.id, to: target.id, event: 'always', guard: guardName(t.guard), kind: 'always' });
    }
    for (const child of children) visit(child, node.id);
  };
  visit(lifecycleMachine.root, null);
  return { nodes, edges };
}

function guardName(guard: unknown): string | null {
  if (!guard) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) {
    const params = (guard as { params?: { scenario?: string } }).params;
    return params?.scenario ?? String((guard as { type: string }).type);
  }
  return 'guard';
}

const dotId = (id: string) => JSON.stringify(id);
const dotLabel = (text: string) => JSON.stringify(text);

/** Graphviz DOT: compound states as clusters, the current states filled. */
export function toDot(graph: MachineGraph): string {
  const byParent = new Map<string | null, GraphNode[]>();
  for (const node of graph.nodes) byParent.set(node.parent, [...(byParent.get(node.parent) ?? []), node]);
  const lines = ['digraph lifecycle {', '  compound=true; rankdir=LR; node [shape=box, style="rounded", fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=8];'];
  const anchor = (node: GraphNode): string => (node.atomic ? node.id : `${node.id}.__anchor`);
  const emit = (parent: string | null, indent: string): void => {
    for (const node of byParent.get(parent) ?? []) {
      const label = [node.key, node.wizardState, node.effect ? `⚙ ${node.effect}` : null].filter(Boolean).join('\n');
      const style = node.current ? ', style="rounded,filled,bold", fillcolor="#ffd54f", penwidth=2' : '';
      if (node.atomic) {
        lines.push(`${indent}${dotId(node.id)} [label=${dotLabel(label)}${style}];`);
      } else {
        lines.push(`${indent}subgraph ${dotId(`cluster_${node.id}`)} {`);
        lines.push(`${indent}  label=${dotLabel(label)}; style="rounded${node.current ? ',filled' : ''}"; fillcolor="#fff8e1";`);
        lines.push(`${indent}  ${dotId(anchor(node))} [shape=point, style=invis];`);
        emit(node.id, `${indent}  `);
        lines.push(`${indent}}`);
      }
    }
  };
  emit(null, '  ');
  const nodesById = new Map(graph.nodes.map((n) => [n.id, n]));
  lines.push('  "any state" [shape=plaintext];');
  for (const edge of graph.edges) {
    const from = edge.kind === 'any-state' ? 'any state' : anchor(nodesById.get(edge.from)!);
    const to = nodesById.get(edge.to)!;
    const attrs = [`label=${dotLabel(edge.guard ? `${edge.event} [${edge.guard}]` : edge.event)}`];
    if (!to.atomic) attrs.push(`lhead=${dotId(`cluster_${to.id}`)}`);
    const fromNode = nodesById.get(edge.from);
    if (fromNode && !fromNode.atomic) attrs.push(`ltail=${dotId(`cluster_${fromNode.id}`)}`);
    if (edge.kind === 'error') attrs.push('color="#c62828"');
    if (edge.kind === 'always') attrs.push('style=dashed');
    lines.push(`  ${dotId(from)} -> ${dotId(anchor(to))} [${attrs.join(', ')}];`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** Mermaid stateDiagram-v2; the current states get the "current" class. */
export function toMermaid(graph: MachineGraph): string {
  const safe = (id: string) => id.replace(/^lifecycle\./, '').replace(/[^A-Za-z0-9_]/g, '_');
  const byParent = new Map<string | null, GraphNode[]>();
  for (const node of graph.nodes) byParent.set(node.parent, [...(byParent.get(node.parent) ?? []), node]);
  const lines = ['stateDiagram-v2', '  classDef current fill:#ffd54f,stroke:#333,stroke-width:3px'];
  const emit = (parent: string | null, indent: string): void => {
    for (const node of byParent.get(parent) ?? []) {
      const label = node.wizardState ? `${node.key} (${node.wizardState})` : node.key;
      if (node.atomic) lines.push(`${indent}state "${label}" as ${safe(node.id)}`);
      else {
        lines.push(`${indent}state "${label}" as ${safe(node.id)} {`);
        emit(node.id, `${indent}  `);
        lines.push(`${indent}}`);
      }
    }
  };
  emit(null, '  ');
  for (const edge of graph.edges) {
    const from = edge.kind === 'any-state' ? '[*]' : safe(edge.from);
    const label = (edge.guard ? `${edge.event} [${edge.guard}]` : edge.event).replace(/:/g, ' ');
    lines.push(`  ${from} --> ${safe(edge.to)} : ${label}`);
  }
  for (const node of graph.nodes.filter((n) => n.current)) lines.push(`  class ${safe(node.id)} current`);
  return `${lines.join('\n')}\n`;
}

/**
 * The top-level states only, for a reader who wants the shape of the lifecycle: each transition that
 * crosses between two of them, its events merged into one edge. The current top-level state carries
 * the path below it (wizard › hsmSetup › waiting), so the overview still says where the machine is.
 */
export interface OverviewNode {
  key: string;
  current: boolean;
  /** The current states below this one, outermost first (empty unless current). */
  path: string[];
}

export interface OverviewEdge {
  from: string | null;
  to: string;
  labels: string[];
}

export function overviewGraph(graph: MachineGraph): { nodes: OverviewNode[]; edges: OverviewEdge[] } {
  const byId = new Map(graph.nodes.map((node) => [node.id, node]));
  const topOf = (id: string): GraphNode => {
    let node = byId.get(id)!;
    while (node.parent !== null) node = byId.get(node.parent)!;
    return node;
  };
  const depth = (node: GraphNode): number => (node.parent === null ? 0 : 1 + depth(byId.get(node.parent)!));
  const nodes = graph.nodes
    .filter((node) => node.parent === null)
    .map((top) => {
      const below = graph.nodes.filter((node) => node.current && node !== top && topOf(node.id) === top).sort((a, b) => depth(a) - depth(b));
      return { key: top.key, current: top.current || below.length > 0, path: below.map((node) => node.key) };
    });
  const merged = new Map<string, OverviewEdge>();
  for (const edge of graph.edges) {
    const from = edge.kind === 'any-state' ? null : topOf(edge.from).key;
    const to = topOf(edge.to).key;
    if (from === to) continue;
    const label = edge.kind === 'done' ? 'done' : edge.kind === 'error' ? 'failed' : edge.kind === 'always' ? 'at once' : edge.event;
    const key = `${from ?? ''}>${to}`;
    const entry = merged.get(key) ?? { from, to, labels: [] };
    if (!entry.labels.includes(label)) entry.labels.push(label);
    merged.set(key, entry);
  }
  return { nodes, edges: [...merged.values()] };
}

/** Graphviz DOT of `overviewGraph`: large labels, the current state filled; `rankdir` suits the screen's shape. */
export function toOverviewDot(graph: MachineGraph, rankdir: 'LR' | 'TB' = 'LR'): string {
  const overview = overviewGraph(graph);
  const lines = [
    'digraph overview {',
    `  rankdir=${rankdir}; nodesep=0.3; ranksep=0.45; node [shape=box, style="rounded", fontname="Helvetica", fontsize=16, margin="0.2,0.1"]; edge [fontname="Helvetica", fontsize=12, color="#5b6575"];`,
    '  "any state" [shape=plaintext, fontsize=13];',
  ];
  for (const node of overview.nodes) {
    const label = node.path.length > 0 ? `${node.key}\n${node.path.join(' › ')}` : node.key;
    const style = node.current ? ', style="rounded,filled,bold", fillcolor="#ffd54f", penwidth=2.5' : '';
    lines.push(`  ${dotId(node.key)} [label=${dotLabel(label)}${style}];`);
  }
  for (const edge of overview.edges) {
    lines.push(`  ${dotId(edge.from ?? 'any state')} -> ${dotId(edge.to)} [label=${dotLabel(edge.labels.join('\n'))}];`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
