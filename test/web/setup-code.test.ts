import { SetupCode, SetupCodeError } from '../../server/web/setup-code';
import { markCurrent } from '../../server/web/graph-svg';

describe('web: the set-up code', () => {
  it('is 120 random bits in six groups, accepted once, whatever the case and spacing', () => {
    const { code, setupCode } = SetupCode.generate();
    expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){5}$/);
    expect(SetupCode.generate().code).not.toBe(code);
    expect(() => setupCode.redeem('AAAA-AAAA-AAAA-AAAA-AAAA-AAAA')).toThrow(SetupCodeError);
    expect(() => setupCode.redeem(undefined)).toThrow(/not the set-up code/);
    expect(setupCode.used).toBe(false);
    setupCode.redeem(` ${code.toLowerCase().replace(/-/g, ' ')} `);
    expect(setupCode.used).toBe(true);
    expect(() => setupCode.redeem(code)).toThrow(/used already/);
  });

  it('keeps no copy of the code, only its digest', () => {
    const { code, setupCode } = SetupCode.generate();
    const held =
      JSON.stringify(setupCode) +
      Object.values(setupCode)
        .map((value) => (Buffer.isBuffer(value) ? value.toString('latin1') : String(value)))
        .join('');
    expect(held).not.toContain(code);
    expect(held).not.toContain(code.replace(/-/g, ''));
  });
});

describe('web: the state graph marking', () => {
  it('classes the current nodes and clusters, sizes the SVG by the page, drops the prolog', () => {
    const raw =
      '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<!-- c -->\n<svg width="10pt" height="5pt" viewBox="0 0 10 5" xmlns="http://www.w3.org/2000/svg">\n<g id="clust1" class="cluster">\n<title>cluster_lifecycle.wizard</title>\n</g>\n<g id="node1" class="node">\n<title>lifecycle.wizard.demoData.waiting</title>\n</g>\n<g id="node2" class="node">\n<title>lifecycle.operational</title>\n</g>\n</svg>\n';
    const svg = markCurrent(raw, new Set(['lifecycle.wizard', 'lifecycle.wizard.demoData.waiting']));
    expect(svg.startsWith('<svg class="state-graph"')).toBe(true);
    expect(svg).not.toMatch(/width="10pt"|<!--|<\?xml/);
    expect(svg).toContain('<g id="node1" class="node current" data-state="lifecycle.wizard.demoData.waiting">');
    expect(svg).toContain('<g id="clust1" class="cluster current" data-state="lifecycle.wizard">');
    expect(svg).toContain('<g id="node2" class="node">');
  });
});
