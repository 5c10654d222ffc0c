/** The part of ejs 7 (which ships no types) that keyward's view engine calls. */
declare module 'ejs' {
  export interface CompileOptions {
    filename: string;
    /** Run the template on the locals object it is given, not on ejs's own copy of them. */
    unsafePrototypeLocals?: boolean;
  }
  export function compile(source: string, options: CompileOptions): (locals: object) => string;
}
