import { readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { compile } from 'ejs';

type Template = (locals: object) => string;

/**
 * Express's view engine for keyward's EJS pages. Each template is compiled once and each include
 * resolved once per including template: ejs's own renderFile looks every include up on disk
 * (existsSync) and copies every local twice per include, on every render: most of a page's cost.
 * Here the page's locals are copied once onto a null prototype (as ejs does; `unsafePrototypeLocals`
 * only stops ejs copying them again), and a partial runs on an object whose prototype is its
 * including template's, with the data passed to `include` on top: names are found along the chain,
 * a partial's writes stay in its own object. (Measured on the status page: ejs's renderFile 100 µs,
 * this 35 µs; an ordinary object as the chain's root, 59 µs.) No option is read from the locals, so
 * no local can become a compile option. A template's code runs inside `with (locals)`, so the
 * `include` it calls is the one on its own object (were ejs to drop `with`, its own include would
 * run: slower, same output).
 */
export class ViewEngine {
  private readonly templates = new Map<string, Template>();
  private readonly includes = new Map<string, string>();

  /** `viewsDir`: where `page` finds a page by its name (Express's `views` setting). */
  constructor(private readonly viewsDir: string | null = null) {}

  /**
   * A page by its name (`status`, `setup-wizard/step`), rendered straight from the locals given:
   * Express's res.render would look the view up and copy the locals twice more before this engine
   * copies them again.
   */
  page(name: string, locals: object): string {
    if (this.viewsDir === null) throw new Error('this view engine was given no views directory');
    return this.run(this.resolveInclude(join(this.viewsDir, 'page'), name), Object.assign(Object.create(null) as object, locals));
  }

  /** The engine function for `app.engine('ejs', ...)`. */
  readonly render = (file: string, options: object, callback: (error: Error | null, html?: string) => void): void => {
    let html: string;
    try {
      html = this.run(file, Object.assign(Object.create(null) as object, options));
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, html);
  };

  private run(file: string, locals: object): string {
    (locals as { include?: unknown }).include = (name: string, data?: object): string => this.run(this.resolveInclude(file, name), Object.assign(Object.create(locals) as object, data));
    return this.template(file)(locals);
  }

  private template(file: string): Template {
    let template = this.templates.get(file);
    if (!template) {
      template = compile(readFileSync(file, 'utf8').replace(/^\uFEFF/, ''), { filename: file, unsafePrototypeLocals: true });
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
