import { templateOf } from './page-template';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- ejs ships no type declarations
const { render } = require('ejs') as { render: (template: string, locals: object) => string };

describe('the bare status page template', () => {
  test('renders exactly the page it was made from, interpolating each text node', () => {
    const html =
      '<!doctype html>\n<html><head><title>Status &amp; keys</title></head>\n<body><p class="x">DEK &lt;loaded&gt; &#39;yes&#39;</p>\n<td>a &quot;b&quot;</td><pre>&lt;% not a tag %&gt; <%</pre><p> </p></body></html>\n';
    const { template, locals } = templateOf(html);
    expect(render(template, locals)).toBe(html);
    // Three escaped interpolations, the &quot; one raw (EJS writes &#34;); a literal "<%" and whitespace-only text stay literal.
    expect(template.match(/<%= t\[\d+\] %>/g)).toHaveLength(3);
    expect(template.match(/<%- t\[\d+\] %>/g)).toHaveLength(1);
    expect(locals.t[0]).toBe('Status & keys');
  });
});
