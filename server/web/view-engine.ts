import { readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { compile } from 'ejs';

type Template = (locals: object) => string;

interface Compiled {
  render: Template;
  /** Whether its code may assign a local (mayWriteLocals): then every local is put back after it runs as a partial. */
  writesLocals: boolean;
}

/**
 * Express's view engine for keyward's EJS pages. Each template is compiled once and each include
 * resolved once per including template: ejs's own renderFile looks every include up on disk
 * (existsSync) and copies every local twice per include, on every render: most of a page's cost.
 * Here the page's locals are copied once onto a null prototype (as ejs does; `unsafePrototypeLocals`
 * only stops ejs copying them again), and a partial runs on that same object, with the data passed
 * to `include` set on it for the partial's run and put back after (a partial's own variables are
 * its function's). Measured on the status page: ejs's renderFile 100 µs; a partial on an object
 * whose prototype was its includer's, 40 µs (each include turned a fresh object into a prototype);
 * this, 30 µs. No option is read from the locals, so no local can become a compile option. A
 * template's code runs inside `with (locals)`, so the `include` it calls is the one on the object
 * (were ejs to drop `with`, its own include would run: slower, same output).
 */
export class ViewEngine {
  private readonly templates = new Map<string, Compiled>();
  private readonly includes = new Map<string, string>();

  /** `viewsDir`: where `page` finds a page by its name (Express's `views` setting). */
  constructor(private readonly viewsDir: string | null = null) {}

  /**
   * A page by its name (`status`, `setup-wizard/step`), rendered straight from the locals given:
   * Express's res.render would look the view up and copy the locals twice more before this engine
   * copies them again. `owned`: the locals are an object with no prototype made for this render
   * alone, used as they are (partials set their data on it while they run).
   */
  page(name: string, locals: object, owned = false): string {
    if (this.viewsDir === null) throw new Error('this view engine was given no views directory');
    const own = owned ? (locals as Record<string, unknown>) : Object.assign(Object.create(null) as Record<string, unknown>, locals);
    return this.run(this.resolveInclude(join(this.viewsDir, 'page'), name), own);
  }

  /** The engine function for `app.engine('ejs', ...)`. */
  readonly render = (file: string, options: object, callback: (error: Error | null, html?: string) => void): void => {
    let html: string;
    try {
      html = this.run(file, Object.assign(Object.create(null) as Record<string, unknown>, options));
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, html);
  };

  private run(file: string, locals: Record<string, unknown>): string {
    const outer = locals.include;
    locals.include = (name: string, data?: Record<string, unknown>): string => this.include(this.resolveInclude(file, name), locals, data);
    try {
      return this.template(file).render(locals);
    } finally {
      locals.include = outer;
    }
  }

  /**
   * A partial on its includer's locals, `data` on top for its run only. Under `with`, a partial's
   * `var x = …` writes x on the object when the page has an x: after a partial that may assign a
   * local (mayWriteLocals), every local is put back; after the others, those `data` set.
   */
  private include(file: string, locals: Record<string, unknown>, data: Record<string, unknown> | undefined): string {
    const dataKeys = data ? Object.keys(data) : [];
    const keys = this.template(file).writesLocals ? [...Object.keys(locals), ...dataKeys] : dataKeys;
    if (keys.length === 0) return this.run(file, locals);
    const had = keys.map((key) => key in locals);
    const values = keys.map((key) => locals[key]);
    if (data) Object.assign(locals, data);
    try {
      return this.run(file, locals);
    } finally {
      for (let i = keys.length - 1; i >= 0; i--) {
        if (had[i]) locals[keys[i]!] = values[i];
        else delete locals[keys[i]!];
      }
    }
  }

  private template(file: string): Compiled {
    let template = this.templates.get(file);
    if (!template) {
      const source = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
      template = { render: compile(source, { filename: file, unsafePrototypeLocals: true }), writesLocals: mayWriteLocals(source) };
      this.templates.set(file, template);
    }
    return template;
  }

  /** ejs's rule: relative to the including template, `.ejs` when the name has no extension. */
  private resolveInclude(from: string, name: string): string {
    const key = `${from}\0${name}`;
    let file = this.includes.get(key);
    if (!file) {
      file = resolve(dirname(from), name);
      if (!extname(name)) file += '.ejs';
      this.includes.set(key, file);
    }
    return file;
  }
}

/** An identifier assigned to (`x = `, `x += `, …; not `==`, `=>`), the identifier first. */
const ASSIGNED = /(?<![\w$.\]])([A-Za-z_$][\w$]*)\s*(?:[-+*/%&|^]|\*\*|<<|>>>?|&&|\|\||\?\?)?=(?![=>])/g;

/**
 * Whether a template's code may assign a name that could be one of its locals: any `var`, `++` or
 * `--`, or an assignment to an identifier not declared with const or let in the same tag. Errs
 * towards yes: a default parameter, an `=` in a template string or a comment count.
 */
export function mayWriteLocals(source: string): boolean {
  for (const tag of source.matchAll(/<%(?!%)([_=\-#]?)([\s\S]*?)[_-]?%>/g)) {
    if (tag[1] === '#') continue;
    const code = tag[2]!.replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/g, "''");
    if (/\bvar\b|\+\+|--/.test(code)) return true;
    const declared = new Set([...code.matchAll(/\b(?:const|let)\s+([A-Za-z_$][\w$]*)/g)].map((match) => match[1]));
    for (const assigned of code.matchAll(ASSIGNED)) if (!declared.has(assigned[1])) return true;
  }
  return false;
}
