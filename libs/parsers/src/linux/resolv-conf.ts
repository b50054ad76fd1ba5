/** /etc/resolv.conf (resolver(5)): nameservers, search domains, options. */
import ipaddr from 'ipaddr.js';
import { ParseError } from '../errors';

export interface ResolvConf {
  nameservers: string[];
  /** From the last `search` or `domain` line (the resolver uses the last one). */
  search: string[];
  options: string[];
}

const KIND = 'resolv.conf';

export function parseResolvConf(text: string): ResolvConf {
  const result: ResolvConf = { nameservers: [], search: [], options: [] };
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const [keyword, ...values] = line.split(/\s+/);
    switch (keyword) {
      case 'nameserver': {
        const server = values[0];
        if (!server || !ipaddr.isValid(server.split('%')[0])) {
          throw new ParseError(KIND, `nameserver is not an IP address: "${line}"`, index + 1);
        }
        result.nameservers.push(server);
        break;
      }
      case 'search':
      case 'domain':
        result.search = values.filter((v) => !v.startsWith('#') && !v.startsWith(';'));
        break;
      case 'options':
        result.options.push(...values);
        break;
      default:
        // sortlist and unknown keywords are ignored by the resolver too.
        break;
    }
  });
  return result;
}
