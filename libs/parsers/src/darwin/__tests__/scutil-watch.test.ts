import { parseScutilChangedKey } from '../scutil-watch';

describe('parseScutilChangedKey (scutil n.watch output)', () => {
  it('reads the key of each changedKey line, with or without the time since the previous one', () => {
    expect(parseScutilChangedKey('   9:05:01.123 changedKey [0] = State:/Network/Global/DNS')).toEqual({ index: 0, key: 'State:/Network/Global/DNS' });
    expect(parseScutilChangedKey('  10:00:07.412 (+3.118) changedKey [1] = Setup:/Network/Service/8A4C1F2E-35B1-4E0C-9D7A-0C2B3E4F5A61/DNS')).toEqual({
      index: 1,
      key: 'Setup:/Network/Service/8A4C1F2E-35B1-4E0C-9D7A-0C2B3E4F5A61/DNS',
    });
    expect(parseScutilChangedKey('  changed key [2] = State:/Network/Global/DNS\r')).toEqual({ index: 2, key: 'State:/Network/Global/DNS' });
  });

  it('ignores the callback banner, errors and anything else', () => {
    expect(parseScutilChangedKey('notification callback (store address = 0x7f8c2bd04a80).')).toBeNull();
    expect(parseScutilChangedKey('  no changed key\'s.')).toBeNull();
    expect(parseScutilChangedKey('  Key already defined')).toBeNull();
    expect(parseScutilChangedKey('  10:00:07.412 changedKey [0] = ')).toBeNull();
  });
});
