/**
 * A strict reader of xbar's plugin output format (tests only), written from xbar's parser
 * (pkg/plugins/parse.go, item_params.go): text up to the first `|`, then `key=value` pairs
 * separated by spaces, a value quoted with " or ' running to the next same quote. Stricter
 * than xbar where xbar and SwiftBar would read a line differently (a backslash inside quotes,
 * a `|` inside a bare value, a key given twice), so a line accepted here means the same to both.
 */

/** Every parameter xbar knows (item_params.go's setValueByKey; any other fails the plugin), all documented by SwiftBar too. */
export const DOCUMENTED_PARAMS = new Set([
  'disabled', 'key', 'href', 'color', 'font', 'size', 'shell', 'bash', 'templateImage', 'image',
  'terminal', 'refresh', 'dropdown', 'length', 'trim', 'alternate', 'emojize', 'ansi',
]);
const SHELL_PARAM = /^param[1-9][0-9]*$/;

export interface MenuLine {
  raw: string;
  /** The text with its submenu dashes removed (and not trimmed). */
  text: string;
  /** Submenu depth: one per leading `--`. */
  depth: number;
  params: [string, string][];
}

function readValue(rest: string, line: string): { value: string; rest: string } {
  const quote = rest[0];
  if (quote === '"' || quote === "'") {
    const end = rest.indexOf(quote, 1);
    if (end < 0) throw new Error(`unterminated ${quote} in: ${line}`);
    const value = rest.slice(1, end);
    if (value.includes('\\')) throw new Error(`backslash inside quotes (SwiftBar keeps it, xbar does not): ${line}`);
    const after = rest.slice(end + 1);
    if (after !== '' && !/^\s/.test(after)) throw new Error(`text glued to a closing quote: ${line}`);
    return { value, rest: after };
  }
  const value = /^\S*/.exec(rest)![0];
  if (value.includes('|')) throw new Error(`a | inside a bare value: ${line}`);
  return { value, rest: rest.slice(value.length) };
}

function readParams(paramText: string, line: string): [string, string][] {
  const params: [string, string][] = [];
  let rest = paramText;
  for (;;) {
    rest = rest.trim();
    if (rest === '') return params;
    const eq = rest.indexOf('=');
    if (eq < 0) throw new Error(`malformed parameters (missing =): ${line}`);
    const key = rest.slice(0, eq);
    if (!DOCUMENTED_PARAMS.has(key) && !SHELL_PARAM.test(key)) throw new Error(`parameter ${JSON.stringify(key)} is not documented: ${line}`);
    if (params.some(([k]) => k === key)) throw new Error(`parameter ${key} given twice: ${line}`);
    const read = readValue(rest.slice(eq + 1), line);
    if (key === 'color' && !/^#[0-9a-f]{6}$/i.test(read.value)) throw new Error(`color must be #rrggbb: ${line}`);
    params.push([key, read.value]);
    rest = read.rest;
  }
}

export function parseMenuLine(raw: string): MenuLine {
  if (/[\r\u0085\u2028\u2029]/.test(raw)) throw new Error(`a line break inside a line: ${JSON.stringify(raw)}`);
  const pipe = raw.indexOf('|');
  const textPart = pipe < 0 ? raw : raw.slice(0, pipe);
  let depth = 0;
  let text = textPart;
  while (text.startsWith('--') && text.trim() !== '---') {
    depth += 1;
    text = text.slice(2);
  }
  return { raw, text, depth, params: pipe < 0 ? [] : readParams(raw.slice(pipe + 1), raw) };
}

export interface Menu {
  title: MenuLine[];
  /** The dropdown; `---` separators are kept as lines whose text is '---'. */
  items: MenuLine[];
}

export function parseMenu(output: string): Menu {
  if (!output.endsWith('\n')) throw new Error('the output does not end with a newline');
  const lines = output.slice(0, -1).split('\n');
  const cut = lines.findIndex((l) => l.trim() === '---');
  const title = (cut < 0 ? lines : lines.slice(0, cut)).map(parseMenuLine);
  const items = (cut < 0 ? [] : lines.slice(cut + 1)).map(parseMenuLine);
  return { title, items };
}

export const param = (line: MenuLine, key: string): string | undefined => line.params.find(([k]) => k === key)?.[1];

/** What xbar runs on a click, without a terminal: bash, then param1…N in their numeric order. */
export function actionArgv(line: MenuLine): string[] {
  const bash = param(line, 'bash');
  if (bash === undefined) throw new Error(`not an action: ${line.raw}`);
  const shellParams = line.params.filter(([k]) => SHELL_PARAM.test(k)).sort(([a], [b]) => Number(a.slice(5)) - Number(b.slice(5)));
  shellParams.forEach(([k], i) => {
    if (k !== `param${i + 1}`) throw new Error(`params must be param1…paramN without gaps: ${line.raw}`);
  });
  return [bash, ...shellParams.map(([, v]) => v)];
}

export const itemNamed = (menu: Menu, text: string): MenuLine | undefined => menu.items.find((l) => l.text.trim() === text);
