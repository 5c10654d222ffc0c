// ejs ships no type declarations: the one function used here, typed.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- an import would need the declarations
const { escapeXML } = require('ejs') as { escapeXML: (text: string) => string };

/**
 * An EJS template and its locals that render exactly `html`: every text node between tags becomes an
 * interpolation (escaped `<%= %>` when EJS's escaping reproduces it, raw `<%- %>` otherwise), so the
 * bare baseline renders a page of keyward's size with the same escaping work per value.
 */
export function templateOf(html: string): { template: string; locals: { t: string[] } } {
  const t: string[] = [];
  const template = html.replace(/>([^<]*[^\s<][^<]*)</g, (_match, text: string) => {
    const decoded = decodeEntities(text);
    const escaped = escapeXML(decoded) === text;
    t.push(escaped ? decoded : text);
    return `><%${escaped ? '=' : '-'} t[${t.length - 1}] %><`;
  });
  // A literal "<%" in the page would be read as a tag: EJS writes it "<%%".
  return { template: template.replace(/<%(?![=-] t\[\d+\] %>)/g, '<%%'), locals: { t } };
}

function decodeEntities(text: string): string {
  return text.replace(/&(amp|lt|gt|#34|#39);/g, (_m, name: string) => ({ amp: '&', lt: '<', gt: '>', '#34': '"', '#39': "'" })[name]!);
}
