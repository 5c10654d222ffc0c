import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mayWriteLocals, ViewEngine } from '../../server/web/view-engine';

const ejs = jest.requireActual<{ renderFile: (file: string, data: object, callback: (error: Error | null, html?: string) => void) => void }>('ejs');

function render(engine: (file: string, data: object, callback: (error: Error | null, html?: string) => void) => void, file: string, data: object): Promise<string> {
  return new Promise((resolve, reject) => engine(file, data, (error, html) => (error ? reject(error) : resolve(html!))));
}

describe('the view engine: compiled once, includes resolved once, the same pages as ejs', () => {
  let views: string;

  beforeAll(() => {
    views = mkdtempSync(join(tmpdir(), 'keyward-views-'));
    mkdirSync(join(views, 'partials'));
    mkdirSync(join(views, 'wizard'));
    writeFileSync(join(views, 'partials', 'head.ejs'), '<title><%= title %></title><%- include("mark") %>\n');
    writeFileSync(join(views, 'partials', 'mark.ejs'), '<i><%= locals.wide ? "wide" : "narrow" %></i>');
    writeFileSync(join(views, 'partials', 'field.ejs'), '<% var title = "changed by the partial"; %><b><%= name %>: <%= errors[name] || "ok" %></b>');
    writeFileSync(join(views, 'partials', 'label.ejs'), '<% const shown = name.toUpperCase(); %><u><%= shown %> <%= title %></u>');
    writeFileSync(
      join(views, 'wizard', 'page.ejs'),
      [
        '<%- include("../partials/head") %>',
        '<% items.forEach((item) => { %><li><%= item %></li><% }) %>',
        '<%- include("../partials/field", { name: "pin" }) %>',
        '<%- include("../partials/field", { name: "label" }) %>',
        '<%- include("../partials/label", { name: "plain", title: "the partial\'s title" }) %>',
        '<p><%= title %> <%= typeof name %></p>',
      ].join('\n'),
    );
    writeFileSync(join(views, 'broken.ejs'), 'line one\n<%= missing.property %>\n');
  });

  afterAll(() => rmSync(views, { recursive: true, force: true }));

  const locals = () => ({ title: 'Keys & <PINs>', items: ['a', '<b>'], errors: { pin: 'The PIN is shorter than this token allows' }, wide: true });

  it('renders byte for byte what ejs renders, nested includes, include data and escaping included', async () => {
    const page = join(views, 'wizard', 'page.ejs');
    const ours = await render(new ViewEngine().render, page, locals());
    expect(ours).toBe(await render(ejs.renderFile, page, locals()));
    expect(ours).toContain('<title>Keys &amp; &lt;PINs&gt;</title><i>wide</i>');
    // A partial's variable and its include data stay in the partial: the page's title and names are its own.
    expect(ours).toContain('<p>Keys &amp; &lt;PINs&gt; undefined</p>');
    expect(ours).toContain('<u>PLAIN the partial&#39;s title</u>');
  });

  it('tells a partial that may assign a local from one that only reads its locals', () => {
    expect(mayWriteLocals('<% var title = "x"; %>')).toBe(true);
    for (const writes of ['<% title = 1 %>', '<% count += 1 %>', '<% count++ %>', '<%= (x ??= 2) %>', '<% const a = 1, b = 2 %>']) expect([writes, mayWriteLocals(writes)]).toEqual([writes, true]);
    for (const reads of [
      '<% const shown = name.toUpperCase(); %>',
      '<%= a === b %>',
      '<% item.label = "x" %>',
      '<% items.forEach((s, i) => { %>',
      '<%= "x = 1" %>',
      '<%# x = 1 %>',
      '<% if (a >= 0) { %>',
    ])
      expect([reads, mayWriteLocals(reads)]).toEqual([reads, false]);
  });

  it('serves each render from the compiled template and never reads a compile option from the locals', async () => {
    const engine = new ViewEngine();
    const page = join(views, 'wizard', 'page.ejs');
    const first = await render(engine.render, page, locals());
    writeFileSync(join(views, 'partials', 'mark.ejs'), '<i>edited after the first render</i>');
    const poisoned = {
      ...locals(),
      settings: { 'view options': { client: true, outputFunctionName: 'x;process.exit(1);//' } },
      outputFunctionName: 'y;process.exit(1);//',
      escapeFunction: () => 'raw',
    };
    expect(await render(engine.render, page, poisoned)).toBe(first);
  });

  it('renders a page by its name under the views directory, as Express would find it', async () => {
    const byName = new ViewEngine(views).page('wizard/page', locals());
    expect(byName).toBe(await render(ejs.renderFile, join(views, 'wizard', 'page.ejs'), locals()));
    expect(() => new ViewEngine(views).page('broken', {})).toThrow(/broken\.ejs:2[\s\S]*missing is not defined/);
    expect(() => new ViewEngine().page('wizard/page', locals())).toThrow('this view engine was given no views directory');
  });

  it('reports a failing expression through the callback with the template and line', async () => {
    await expect(render(new ViewEngine().render, join(views, 'broken.ejs'), {})).rejects.toThrow(/broken\.ejs:2[\s\S]*missing is not defined/);
  });
});
