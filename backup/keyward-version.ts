import { version } from '../package.json';

/** The running keyward's version, as recorded in every archive it writes. */
export const KEYWARD_VERSION: string = version;
