/**
 * Field names as the forms label them: an engine or schema message names a field by its internal
 * name ("estPassword is longer than 128 characters"); the page says the label the operator sees
 * ("EST password is longer than 128 characters."). Pure: the unit tests import it.
 */
export const FIELD_LABELS: Readonly<Record<string, string>> = {
  modulePath: 'PKCS#11 module path',
  label: 'Token label',
  slot: 'Slot',
  pin: 'User PIN',
  soPin: 'Security officer (SO) PIN',
  pinConfirm: 'User PIN, again',
  subjectAltNames: 'Subject alternative names',
  keyFile: 'Private key (PEM)',
  certificateFile: 'Certificate (PEM)',
  chainFile: 'Chain (PEM)',
  pkcs12File: 'PKCS#12 file',
  pkcs12Password: 'Password of the file',
  username: 'User name',
  password: 'Password',
  passwordConfirm: 'The same password again',
  currentPassword: 'Current backup password',
  adminPassword: 'Your administrator password',
  passphrase: 'Archive passphrase',
  name: 'Name',
  estPassword: 'EST password',
  cmpSharedSecret: 'CMP shared secret',
  storageType: 'Crypto storage',
  hsmType: 'HSM type',
  code: 'Set-up code',
};

/** A label inside a sentence: "the token label", but "the EST password" (an acronym keeps its case). */
function inSentence(label: string): string {
  const first = label.split(/[\s(]/)[0]!;
  return first.length > 1 && first === first.toUpperCase() ? label : `${label[0]!.toLowerCase()}${label.slice(1)}`;
}

/**
 * Replaces field names by their labels: a field name that opens the message (its subject), and any
 * camelCase field name within it. A plain word elsewhere ("label", "name") is left alone: inside a
 * sentence it is usually just the word.
 */
export function withLabels(message: string, labels: Readonly<Record<string, string>> = FIELD_LABELS): string {
  const known = (word: string) => (Object.hasOwn(labels, word) ? labels[word]! : null);
  const opening = /^([A-Za-z][A-Za-z0-9]*)\b/.exec(message)?.[1];
  const openingLabel = opening ? known(opening) : null;
  const rest = openingLabel ? message.slice(opening!.length) : message;
  const replaced = rest.replace(/\b[a-z]+[A-Z][A-Za-z0-9]*\b/g, (word) => {
    const label = known(word);
    return label ? inSentence(label) : word;
  });
  return `${openingLabel ?? ''}${replaced}`;
}

/** A message as a sentence: capital first letter, a full stop at the end. */
export function sentence(message: string): string {
  const text = message.trim();
  if (text === '') return text;
  return `${text[0]!.toUpperCase()}${text.slice(1)}${/[.!?)”]$/.test(text) ? '' : '.'}`;
}
