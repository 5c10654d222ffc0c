import { instance } from '@viz-js/viz';
import { CliHome } from '../support/cli';

/** `keyward graph`: the machine as DOT, Mermaid or JSON, with the persisted state marked. */
describe('keyward graph', () => {
  const cli = new CliHome('graph');

  beforeAll(() => {
    expect(cli.run(['boot']).status).toBe(0);
    expect(cli.send('SELECT_STORAGE', { storageType: 'software' }).status).toBe(0);
  });

  it('marks the current state in JSON, DOT and Mermaid, and the DOT renders', async () => {
    const json = JSON.parse(cli.run(['graph', '--format', 'json']).stdout) as { state: string; nodes: Array<{ id: string; current: boolean }>; edges: Array<{ event: string; to: string }> };
    expect(json.state).toBe('wizard.setupMode.waiting');
    const current = json.nodes.filter((n: { current: boolean }) => n.current).map((n: { id: string }) => n.id);
    expect(current).toEqual(['wizard', 'lifecycle.wizard.setupMode', 'lifecycle.wizard.setupMode.waiting']);
    expect(json.nodes.find((n: { id: string }) => n.id === 'lifecycle.startup.restoring.RESTORE_SOFTHSM_NEW_KEK_WIZARD_COMPLETED')).toBeTruthy();
    expect(json.edges.some((e: { event: string; to: string }) => e.event === 'CANCEL_TLS' && e.to === 'lifecycle.wizard.tlsCredential')).toBe(true);

    const dot = cli.run(['graph', '--format', 'dot']).stdout;
    expect(dot).toMatch(/"lifecycle\.wizard\.setupMode\.waiting" \[label="waiting", style="rounded,filled,bold", fillcolor="#ffd54f"/);
    const svg = (await instance()).renderString(dot, { format: 'svg' });
    expect(svg).toMatch(/<svg/);
    expect(svg).toMatch(/RESTORE_PHYSICAL_HSM_WIZARD_COMPLETED_DEK_NOT_CACHED/);

    const mermaid = cli.run(['graph', '--format', 'mermaid']).stdout;
    expect(mermaid).toMatch(/^stateDiagram-v2/);
    expect(mermaid).toMatch(/class wizard_setupMode_waiting current/);
    expect(cli.run(['graph', '--format', 'png']).status).toBe(2);
  });
});
