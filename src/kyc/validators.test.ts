import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ageOfMajority,
  ageOn,
  checkNationalId,
  checkPhone,
  generateNationalId,
  NATIONAL_ID_TYPES,
  type NationalIdType,
  nationalIdBirthDate,
} from './validators.ts';

const TODAY = new Date('2026-05-01T12:00:00Z');

// An independent MOD 11-2 (weights computed as 2^(17-i) mod 11, not copied from the module's table), so
// the tests can build numbers that pass the check character and fail only the rule under test.
function withCnCheck(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * (2 ** (17 - i) % 11);
  const check = (12 - (sum % 11)) % 11;
  return `${first17}${check === 10 ? 'X' : check}`;
}

/** A seeded PRNG (mulberry32), so each fast-check seed gives `generateNationalId` one fixed stream. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rejects(type: NationalIdType, text: string, reason: string): void {
  assert.deepEqual(checkNationalId(type, text, TODAY), { ok: false, reason }, text);
}

describe('China resident identity number (GB 11643-1999)', () => {
  it('accepts the standard’s example and canonicalises case, spaces and hyphens', () => {
    for (const text of [
      '11010519491231002X',
      '11010519491231002x',
      '110105 19491231 002X',
      '110105-19491231-002x',
    ]) {
      assert.deepEqual(checkNationalId('cn_resident_id', text, TODAY), {
        ok: true,
        value: '11010519491231002X',
      });
    }
    assert.equal(nationalIdBirthDate('cn_resident_id', '11010519491231002X'), '1949-12-31');
    // Built by the independent check above, so the module's weight table is cross-checked.
    assert.equal(withCnCheck('11010519491231002'), '11010519491231002X');
  });

  it('refuses a wrong shape or region digit as format', () => {
    for (const text of [
      '',
      '11010519491231002', // 17 characters
      '11010519491231002XX',
      '1101051949123100X2', // X only as the check character
      '11010519491231002Y',
      '110105194912310', // the retired 15-digit form
      withCnCheck('01010519491231002'), // region digit 0
      withCnCheck('91010519491231002'), // 9: foreigners' permanent residence card, not a resident id
      `${'1'.repeat(60)} 11010519491231002X`, // over the length bound before stripping
    ]) {
      rejects('cn_resident_id', text, 'format');
    }
  });

  it('refuses a wrong check character, and catches every single-digit error', () => {
    rejects('cn_resident_id', '110105194912310021', 'check_digit');
    rejects('cn_resident_id', '110105194912310020', 'check_digit');
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 16 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer(),
        (position, shift, seed) => {
          const valid = generateNationalId('cn_resident_id', seededRandom(seed));
          const digit = (Number(valid[position]) + shift) % 10;
          const typo = `${valid.slice(0, position)}${digit}${valid.slice(position + 1)}`;
          const expected = position === 0 && (digit === 0 || digit === 9) ? 'format' : 'check_digit';
          assert.deepEqual(checkNationalId('cn_resident_id', typo, TODAY), { ok: false, reason: expected });
        },
      ),
    );
  });

  it('refuses birth dates that do not exist, precede 1900 or lie in the future', () => {
    for (const first17 of [
      '11010519490231002', // 31 February
      '11010519001301002', // month 13
      '11010520230229002', // 2023 is not a leap year
      '11010519000229002', // nor was 1900
      '11010518991231002', // before 1900
      '11010520260502002', // the day after TODAY
    ]) {
      rejects('cn_resident_id', withCnCheck(first17), 'invalid_date');
    }
    // GB 11643-1999's own second example encodes 1880-01-01: checksum sound, date refused by the 1900 rule.
    rejects('cn_resident_id', '440524188001010014', 'invalid_date');
    assert.equal(checkNationalId('cn_resident_id', withCnCheck('11010520000229002'), TODAY).ok, true);
    assert.equal(checkNationalId('cn_resident_id', withCnCheck('11010520260501002'), TODAY).ok, true);
  });
});

describe('UK National Insurance number (HMRC NIM39110)', () => {
  it('accepts prefix, six digits and suffix A-D, canonicalised', () => {
    for (const text of ['AB123456C', 'ab 12 34 56 c', 'AB-123456-C', 'ZY999999A', 'OA000000D']) {
      const result = checkNationalId('uk_nino', text, TODAY);
      assert.equal(result.ok, true, text);
    }
    assert.deepEqual(checkNationalId('uk_nino', 'ab 12 34 56 c'), { ok: true, value: 'AB123456C' });
    assert.equal(nationalIdBirthDate('uk_nino', 'AB123456C'), undefined);
  });

  it('refuses malformed numbers and letters never used as format', () => {
    for (const text of [
      '',
      'AB123456', // suffix required
      'AB123456E',
      'AB12345C',
      'AB1234567C',
      '1B123456C',
      'QQ123456C', // HMRC's specimen: Q is never used
      'DA123456A',
      'FA123456A',
      'IA123456A',
      'UA123456A',
      'VA123456A',
      'AD123456A',
      'AO123456A', // O only as the first letter
      'AV123456A',
    ]) {
      rejects('uk_nino', text, 'format');
    }
  });

  it('refuses prefixes that are never allocated as reserved', () => {
    for (const prefix of ['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ']) {
      rejects('uk_nino', `${prefix}123456A`, 'reserved');
    }
  });
});

describe('US Social Security number (SSA)', () => {
  it('accepts nine digits with or without hyphens', () => {
    assert.deepEqual(checkNationalId('us_ssn', '123-45-6789', TODAY), { ok: true, value: '123456789' });
    assert.deepEqual(checkNationalId('us_ssn', '899 99 9999', TODAY), { ok: true, value: '899999999' });
    assert.equal(checkNationalId('us_ssn', '001010001', TODAY).ok, true);
    assert.equal(nationalIdBirthDate('us_ssn', '123456789'), undefined);
  });

  it('refuses what is not nine digits as format', () => {
    for (const text of ['', '12345678', '1234567890', '12345678X', '123.45.6789', '１２３４５６７８９']) {
      rejects('us_ssn', text, 'format');
    }
  });

  it('refuses never-issued areas, groups and serials, and the void advertising numbers', () => {
    for (const text of [
      '000-12-3456',
      '666-12-3456',
      '900-12-3456',
      '999-12-3456',
      '123-00-4567',
      '123-45-0000',
      '078-05-1120', // Woolworth wallet card
      '219-09-9999', // SSA pamphlet specimen
    ]) {
      rejects('us_ssn', text, 'reserved');
    }
  });
});

describe('generateNationalId', () => {
  it('always produces a number checkNationalId accepts, in canonical form, deterministically', () => {
    fc.assert(
      fc.property(fc.constantFrom(...NATIONAL_ID_TYPES), fc.integer(), (type, seed) => {
        const generated = generateNationalId(type, seededRandom(seed));
        assert.deepEqual(checkNationalId(type, generated, TODAY), { ok: true, value: generated });
        assert.equal(generateNationalId(type, seededRandom(seed)), generated);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes the birth date asked for in Chinese numbers', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('1900-01-01T00:00:00Z'), max: TODAY, noInvalidDate: true }),
        fc.integer(),
        (date, seed) => {
          const birthDate = date.toISOString().slice(0, 10);
          const generated = generateNationalId('cn_resident_id', seededRandom(seed), birthDate);
          assert.deepEqual(checkNationalId('cn_resident_id', generated, TODAY), {
            ok: true,
            value: generated,
          });
          assert.equal(nationalIdBirthDate('cn_resident_id', generated), birthDate);
        },
      ),
    );
  });

  it('copes with the extremes of random() and refuses what no valid number encodes', () => {
    for (const type of NATIONAL_ID_TYPES) {
      for (const edge of [0, 1 - Number.EPSILON]) {
        assert.equal(
          checkNationalId(
            type,
            generateNationalId(type, () => edge),
            TODAY,
          ).ok,
          true,
        );
      }
      assert.throws(() => generateNationalId(type, () => 1), RangeError);
    }
    for (const birthDate of ['2023-02-29', '1899-12-31', '9999-01-01', '1990-6-1']) {
      assert.throws(() => generateNationalId('cn_resident_id', () => 0.5, birthDate), RangeError, birthDate);
    }
  });
});

describe('checkPhone', () => {
  it('accepts numbers valid in the CN, UK, US and DE numbering plans, as E.164', () => {
    for (const [text, e164] of [
      ['+86 131 2345 6789', '+8613123456789'], // CN mobile
      ['+86 10 1234 5678', '+861012345678'], // CN Beijing fixed line
      ['+44 7400 123456', '+447400123456'], // UK mobile
      ['+44 (0)20 7946 0958', '+442079460958'], // UK London, with the customary (0)
      ['+1 201-555-0123', '+12015550123'], // US
      ['+1 (202) 456-1111', '+12024561111'],
      ['+49 151 23456789', '+4915123456789'], // DE mobile
      ['+49 30 227-0', '+49302270'], // DE Berlin fixed line
      [' +4915123456789 ', '+4915123456789'],
    ] as const) {
      assert.deepEqual(checkPhone(text), { ok: true, e164 }, text);
    }
  });

  it('refuses national format, numbers outside the plans, extensions and surrounding text', () => {
    for (const text of [
      '',
      '07400 123456', // national format: the country is unknown
      '8613123456789',
      '+86 131 2345 678', // CN mobile one digit short
      '+86 12345',
      '+44 7700 900123', // Ofcom's drama range, never assigned
      '+44 20 7946 095',
      '+1 555 123 4567', // no such US area code
      '+1 201 055 0123', // exchange cannot start with 0
      '+49 151 2345',
      '+999 12345678', // no such country code
      '++44 7400 123456',
      '+44 7400 123456 ext. 12',
      'tel: +44 7400 123456',
      '+44 7400 123456 call me',
      `+44 7400 123456${' '.repeat(60)}0`,
    ]) {
      assert.deepEqual(checkPhone(text), { ok: false, reason: 'format' }, text);
    }
  });
});

describe('ageOn', () => {
  it('counts whole years, turning older on the birthday itself (UTC)', () => {
    assert.equal(ageOn('1990-06-15', new Date('2026-06-14T23:59:59Z')), 35);
    assert.equal(ageOn('1990-06-15', new Date('2026-06-15T00:00:00Z')), 36);
    // 23:30 at UTC−2 on the 14th is already the 15th in UTC.
    assert.equal(ageOn('1990-06-15', new Date('2026-06-14T23:30:00-02:00')), 36);
    assert.equal(ageOn('1990-12-31', new Date('2026-01-01T00:00:00Z')), 35);
    assert.equal(ageOn('2026-05-01', TODAY), 0);
  });

  it('ages someone born on 29 February on 1 March in common years', () => {
    assert.equal(ageOn('2008-02-29', new Date('2026-02-28T12:00:00Z')), 17);
    assert.equal(ageOn('2008-02-29', new Date('2026-03-01T00:00:00Z')), 18);
    assert.equal(ageOn('2008-02-29', new Date('2028-02-28T12:00:00Z')), 19);
    assert.equal(ageOn('2008-02-29', new Date('2028-02-29T00:00:00Z')), 20);
  });

  it('refuses dates that do not exist or lie in the future', () => {
    for (const text of [
      '',
      '2023-02-29',
      '1900-02-29',
      '1990-04-31',
      '1990-13-01',
      '1990-00-10',
      '1990-6-15',
      '1990-06-15T00:00:00Z',
      '2026-05-02',
    ]) {
      assert.equal(ageOn(text, TODAY), undefined, text);
    }
    assert.equal(ageOn('2000-02-29', TODAY), 26);
  });
});

describe('ageOfMajority', () => {
  it('is 18 unless the nationality’s law says otherwise', () => {
    assert.deepEqual(
      ['GB', 'CN', 'US', 'DE', 'JP', 'KR', 'kr', 'TH', 'NZ', 'SG', 'EG', 'XX'].map(ageOfMajority),
      [18, 18, 18, 18, 18, 19, 19, 20, 20, 21, 21, 18],
    );
  });
});
