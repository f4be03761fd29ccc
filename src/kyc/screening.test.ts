import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_SCREENING_LISTS,
  DEFAULT_THRESHOLD,
  LIST_BYTES_MAX,
  type ListedPerson,
  loadScreeningList,
  loadScreeningLists,
  nameTokens,
  ofacBirthDates,
  parseListsSetting,
  Screener,
  type ScreeningHit,
  type ScreeningList,
  ScreeningListError,
} from './screening.ts';

const [ofacSetting, euSetting, pepSetting] = DEFAULT_SCREENING_LISTS;
assert.ok(ofacSetting && euSetting && pepSetting);

/** A one-person list, to test the matching of two names without the shipped lists around them. */
function listOf(names: readonly string[], birthDates: readonly string[] = []): ScreeningList {
  const person: ListedPerson = {
    listSource: 'test',
    kind: 'sanctions',
    entryId: '1',
    names,
    birthDates,
    program: 'T',
  };
  return { source: 'test', kind: 'sanctions', people: [person] };
}

function nameScore(listed: string, subject: string): number {
  const hits = new Screener([listOf([listed])], { threshold: 0.01 }).screen({ name: subject });
  return hits[0]?.score ?? 0;
}

const SDN_ROW_TAIL = '"-0- ","-0- ","-0- ","-0- ","-0- ","-0- ","-0- "';

describe('screening lists', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apibank-screening-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, content: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  }

  async function rejects(
    load: Promise<unknown>,
    path: string,
    location: string | undefined,
    problem: RegExp,
  ) {
    await assert.rejects(load, (error: unknown) => {
      assert.ok(error instanceof ScreeningListError, String(error));
      assert.equal(error.file, path);
      assert.equal(error.location, location);
      assert.match(error.message, problem);
      assert.ok(error.message.startsWith(path));
      return true;
    });
  }

  it('reads the OFAC CSV: individuals only, aliases from alt.csv, programmes, dates of birth', async () => {
    const list = await loadScreeningList(ofacSetting.path, { altPath: ofacSetting.altPath ?? '' });
    assert.equal(list.source, 'ofac-sdn');
    assert.equal(list.kind, 'sanctions');
    assert.equal(list.people.length, 22);
    // Entity, vessel and airline rows are not people; neither is the alias of the entity.
    for (const entryId of ['10021', '10022', '10023'])
      assert.equal(
        list.people.find((p) => p.entryId === entryId),
        undefined,
      );
    const byId = (id: string) => list.people.find((p) => p.entryId === id);
    assert.deepEqual(byId('10001'), {
      listSource: 'ofac-sdn',
      kind: 'sanctions',
      entryId: '10001',
      names: [
        'ZHELEZNYAKOV, Arkady Semyonovich',
        'ZHELEZNIAKOV, Arkadii Semenovich',
        'ZHELESNJAKOW, Arkadij',
      ],
      birthDates: ['1961-03-14', '1962'],
      program: 'SYNTH-RUSSIA',
    });
    assert.deepEqual(byId('10006')?.birthDates, ['1958', '1959', '1960']);
    assert.equal(byId('10006')?.program, 'SYNTH-RUSSIA, SYNTH-CYBER');
    assert.deepEqual(byId('10005')?.birthDates, ['1966']);
    assert.deepEqual(byId('10007')?.birthDates, ['1979']);
    assert.deepEqual(byId('10018')?.birthDates, []);
    assert.equal(byId('10002')?.names.length, 4);

    const withoutAliases = await loadScreeningList(ofacSetting.path);
    assert.deepEqual(withoutAliases.people.find((p) => p.entryId === '10001')?.names, [
      'ZHELEZNYAKOV, Arkady Semyonovich',
    ]);
  });

  it('reads dates of birth in every shape OFAC remarks use', () => {
    assert.deepEqual(
      ofacBirthDates(
        'DOB 01 Jan 1960; alt. DOB 5 Feb 1961; POB Baghdad, Iraq; DOB circa 1955; DOB Mar 1970.',
      ),
      ['1960-01-01', '1961-02-05', '1955', '1970'],
    );
    assert.deepEqual(ofacBirthDates('DOB 1958 to 1960; alt. DOB 1959'), ['1958', '1959', '1960']);
    assert.deepEqual(ofacBirthDates('nationality Iran; DOB unknown; Passport 123'), []);
    assert.throws(
      () => ofacBirthDates('DOB 30 Feb 1960', 'sdn.csv', 'line 3'),
      /sdn\.csv \(line 3\).*calendar date/,
    );
    assert.throws(() => ofacBirthDates('DOB 1900 to 1990'), /range/);
  });

  it('reads the EU XML: persons only, every alias in every script, full and year-only birth dates', async () => {
    const list = await loadScreeningList(euSetting.path);
    assert.equal(list.source, 'eu-consolidated');
    assert.equal(list.people.length, 18);
    assert.equal(
      list.people.find((p) => p.entryId === '900101'),
      undefined,
    ); // an enterprise
    const byId = (id: string) => list.people.find((p) => p.entryId === id);
    assert.deepEqual(byId('900001'), {
      listSource: 'eu-consolidated',
      kind: 'sanctions',
      entryId: '900001',
      names: ['Arkady Semyonovich ZHELEZNYAKOV', 'Аркадий Семёнович Железняков'],
      birthDates: ['1961-03-14'],
      program: 'SYNTH-RUS',
    });
    assert.deepEqual(byId('900004')?.birthDates, ['1959']);
    assert.deepEqual(byId('900006')?.birthDates, ['1970-02-10', '1971']);
    assert.deepEqual(byId('900008')?.birthDates, []); // a place of birth only
    assert.deepEqual(byId('900003')?.names, ['TANG Yuzhe', '唐宇哲']);
  });

  it('joins the name parts of an EU alias without a wholeName', async () => {
    const path = await file(
      'parts.xml',
      `<?xml version="1.0" encoding="UTF-8"?>
<export xmlns="http://eu.europa.ec/fpi/fsd/export">
  <sanctionEntity logicalId="7">
    <subjectType code="person" classificationCode="P"/>
    <nameAlias firstName="Ana" middleName="" lastName="Ejemplo" wholeName=""/>
    <birthdate birthdate="1980-05-06" year="1980"/>
  </sanctionEntity>
</export>`,
    );
    const list = await loadScreeningList(path, { source: 'eu', kind: 'pep' });
    assert.deepEqual(list.people, [
      {
        listSource: 'eu',
        kind: 'pep',
        entryId: '7',
        names: ['Ana Ejemplo'],
        birthDates: ['1980-05-06'],
        program: '',
      },
    ]);
  });

  it('reads an EU export without entities as an empty list', async () => {
    const path = await file(
      'empty.xml',
      '<export xmlns="http://eu.europa.ec/fpi/fsd/export" globalFileId="1"></export>',
    );
    assert.deepEqual((await loadScreeningList(path)).people, []);
  });

  it('reads the PEP list, shipped in the OFAC layout, as kind pep', async () => {
    const list = await loadScreeningList(pepSetting.path, { kind: 'pep' });
    assert.equal(list.kind, 'pep');
    assert.equal(list.people.length, 20);
    assert.ok(list.people.every((p) => p.kind === 'pep' && p.program === 'PEP' && p.listSource === 'pep'));
  });

  it('loads every shipped list through the default setting', async () => {
    const lists = await loadScreeningLists(DEFAULT_SCREENING_LISTS);
    assert.deepEqual(
      lists.map((l) => [l.source, l.kind, l.people.length]),
      [
        ['ofac-sdn', 'sanctions', 22],
        ['eu-consolidated', 'sanctions', 18],
        ['pep', 'pep', 20],
      ],
    );
  });

  it('refuses malformed OFAC CSV, naming the file and the line', async () => {
    const good = `1,"DOE, Jane","individual","T",${SDN_ROW_TAIL},"-0- "\n`;
    let path = await file('columns.csv', `${good}2,"ROE, Richard","individual","T"\n`);
    await rejects(loadScreeningList(path), path, 'line 2', /expected 12 columns.*found 4/);
    path = await file('id.csv', `${good}\nX7,"ROE, Richard","individual","T",${SDN_ROW_TAIL},"-0- "\n`);
    await rejects(loadScreeningList(path), path, 'line 3', /ent_num "X7" is not a number/);
    path = await file('twice.csv', `${good}${good}`);
    await rejects(loadScreeningList(path), path, 'line 2', /ent_num 1 appears twice/);
    path = await file('name.csv', `3,"-0- ","individual","T",${SDN_ROW_TAIL},"-0- "\n`);
    await rejects(loadScreeningList(path), path, 'line 1', /name is empty/);
    path = await file('dob.csv', `${good}4,"ROE, R","individual","T",${SDN_ROW_TAIL},"DOB 31 Feb 1960"\n`);
    await rejects(loadScreeningList(path), path, 'line 2', /not a calendar date/);
    path = await file('quote.csv', `${good}5,"ROE, R,"individual"\n`);
    await rejects(loadScreeningList(path), path, undefined, /not valid CSV/);

    const sdn = await file('sdn.csv', good);
    const alt = await file('alt.csv', '1,10,"aka","DOE, Janet","-0- "\n1,11,"aka"\n');
    await rejects(loadScreeningList(sdn, { altPath: alt }), alt, 'line 2', /expected 5 columns/);
  });

  it('refuses malformed EU XML, naming the file and the line or entry', async () => {
    const entity = (inner: string, id = ' logicalId="9"') => `<sanctionEntity${id}>${inner}</sanctionEntity>`;
    const person = '<subjectType code="person"/><nameAlias wholeName="Jane Doe"/>';
    const cases: [string, string, string, RegExp][] = [
      [
        'broken.xml',
        '<export>\n<sanctionEntity logicalId="1">\n</export>',
        'line 3, column 1',
        /not valid XML/,
      ],
      ['root.xml', '<sdnList></sdnList>', '', /root element is not <export>/],
      ['id.xml', `<export>${entity(person, '')}</export>`, 'sanctionEntity #1', /logicalId is missing/],
      [
        'twice.xml',
        `<export>${entity(person)}${entity(person)}</export>`,
        'sanctionEntity #2 logicalId=9',
        /twice/,
      ],
      [
        'type.xml',
        `<export>${entity('<nameAlias wholeName="X"/>')}</export>`,
        'sanctionEntity #1 logicalId=9',
        /subjectType/,
      ],
      [
        'noname.xml',
        `<export>${entity('<subjectType code="person"/>')}</export>`,
        'sanctionEntity #1 logicalId=9',
        /without a nameAlias/,
      ],
      [
        'birth.xml',
        `<export>${entity(`${person}<birthdate birthdate="1960-13-01"/>`)}</export>`,
        'sanctionEntity #1 logicalId=9',
        /birthdate "1960-13-01" is not a date/,
      ],
    ];
    for (const [name, content, location, problem] of cases) {
      const path = await file(name, content);
      await rejects(loadScreeningList(path), path, location === '' ? undefined : location, problem);
    }
    const path = await file('alt-with-xml.xml', `<export>${entity(person)}</export>`);
    await rejects(
      loadScreeningList(path, { altPath: path }),
      path,
      undefined,
      /alt file belongs with an OFAC CSV/,
    );
  });

  it('refuses a file too large before reading it, and a missing file', async () => {
    const path = join(dir, 'huge.csv');
    await writeFile(path, '');
    await truncate(path, LIST_BYTES_MAX + 1); // sparse: no disk used
    await rejects(loadScreeningList(path), path, undefined, /more than the 67108864 allowed/);
    const missing = join(dir, 'missing.csv');
    await rejects(loadScreeningList(missing), missing, undefined, /cannot be read/);
  });
});

describe('APIBANK_SCREENING_LISTS', () => {
  it('parses kind:path entries, with an optional OFAC alt file', () => {
    assert.deepEqual(
      parseListsSetting('sanctions:/lists/sdn.csv,sanctions:/lists/eu.xml,pep:/lists/pep.csv'),
      [
        { kind: 'sanctions', path: '/lists/sdn.csv' },
        { kind: 'sanctions', path: '/lists/eu.xml' },
        { kind: 'pep', path: '/lists/pep.csv' },
      ],
    );
    assert.deepEqual(parseListsSetting(' sanctions:/l/sdn.csv+/l/alt.csv , pep:C:\\lists\\pep.csv'), [
      { kind: 'sanctions', path: '/l/sdn.csv', altPath: '/l/alt.csv' },
      { kind: 'pep', path: 'C:\\lists\\pep.csv' },
    ]);
  });

  it('refuses anything else, so a typo cannot leave a list out', () => {
    for (const bad of [
      '',
      'sanction:/a.csv',
      '/a.csv',
      'pep:',
      'pep:/a.csv,',
      'pep:/a.csv+',
      'pep:/a+/b+/c',
    ]) {
      assert.throws(() => parseListsSetting(bad), /APIBANK_SCREENING_LISTS/, bad);
    }
    assert.throws(() => parseListsSetting(Array(33).fill('pep:/a.csv').join(',')), /more than 32/);
  });

  it('defaults to the synthetic lists in data/screening', () => {
    assert.deepEqual(
      DEFAULT_SCREENING_LISTS.map((s) => [
        s.kind,
        s.path.replace(/.*\/data\//, 'data/'),
        s.altPath?.replace(/.*\/data\//, 'data/'),
      ]),
      [
        ['sanctions', 'data/screening/ofac-sdn.csv', 'data/screening/ofac-alt.csv'],
        ['sanctions', 'data/screening/eu-consolidated.xml', undefined],
        ['pep', 'data/screening/pep.csv', undefined],
      ],
    );
  });
});

describe('name matching', () => {
  it('normalises script, case, punctuation and transliteration variants to the same tokens', () => {
    assert.deepEqual(nameTokens('Сергей Иванов'), nameTokens('Sergei IVANOV'));
    assert.deepEqual(nameTokens('Sergey Ivanov'), nameTokens('sergei ivanov'));
    assert.deepEqual(nameTokens('Müller'), nameTokens('Mueller'));
    assert.deepEqual(nameTokens('Muller'), nameTokens('Mueller'));
    assert.deepEqual(nameTokens("O'Brien,  Patrick!"), nameTokens('OBRIEN Patrick'));
    assert.deepEqual(nameTokens('Aleksei'), nameTokens('Alexei'));
    assert.deepEqual(nameTokens('习近平'), ['ksi', 'jin', 'ping']); // one token per character
  });

  // The calibration behind DEFAULT_THRESHOLD (0.88): each of these must hit...
  const SAME_PERSON: [string, string][] = [
    ['IVANOV, Sergei', 'Сергей Иванов'],
    ['IVANOV, Sergei', 'Sergey Ivanov'],
    ['IVANOV, Sergei Petrovich', 'Sergei Ivanov'],
    ['IVANOV, Sergei', 'Sergei Petrovich Ivanov'],
    ['IVANOV, Sergei', 'Sergei Ivanof'],
    ['MUELLER, Hans', 'Hans Müller'],
    ['MÜLLER, Hans', 'Hans Muller'],
    ['Xi Jinping', '习近平'],
    ['习近平', 'Jinping Xi'],
    ['王伟', 'Wang Wei'],
    ['AL-RASHID, Mohammed', 'Muhammad al-Rashid'],
    ['AL-RASHID, Mohammed', 'Mohammad Al Rasheed'],
    ['ABD AL-RAHMAN, Yusuf', 'Youssef Abdulrahman'],
    ['BIN LADIN, Usama', 'Osama ben Laden'],
    ['PETROVA, Yekaterina', 'Ekaterina Petrova'],
    ['KOWALSKI, Jonathan', 'Jonathon Kowalski'],
    ['KOWALSKI, Jonathan', 'Jnoathan Kowalski'],
    ['SHCHERBAKOV, Aleksandr', 'Alexander Scherbakov'],
    ['DUBOIS, Jean Pierre', 'Jeanpierre Dubois'],
  ];
  // ...and none of these: other people who share a name, a surname or most of the letters.
  const OTHER_PERSON: [string, string][] = [
    ['IVANOV, Sergei', 'Sergio Ivanez'],
    ['IVANOV, Sergei', 'Ivan Sergeev'],
    ['IVANOV, Sergei', 'Anna Ivanova'],
    ['IVANOV, Sergei', 'Boris Ivanov'],
    ['IVANOV, Sergei', 'Sergei Ivanenko'],
    ['IVANOV, Sergei', 'Ivanov'],
    ['MUELLER, Hans', 'Klaus Müller'],
    ['AL-RASHID, Mohammed', 'Mohammed Ali'],
    ['AL-RASHID, Mohammed', 'Mahmoud al-Rashid'],
    ['AL-RASHID, Mohammed', 'Al Rashid'],
    ['ABD AL-RAHMAN, Yusuf', 'Yusuf Rahman Haddad'],
    ['Xi Jinping', 'Xu Jingping'],
    ['王伟', 'Wang Lei'],
    ['KOWALSKI, Jonathan', 'John Kowalski'],
    ['KOWALSKI, Jonathan', 'Jonathan Kowal'],
    ['HASSAN, Ali', 'Ali Hussein'],
  ];

  it('scores the same person, however written, at or above the default threshold', () => {
    for (const [listed, subject] of SAME_PERSON) {
      assert.ok(
        nameScore(listed, subject) >= DEFAULT_THRESHOLD,
        `${listed} / ${subject}: ${nameScore(listed, subject)}`,
      );
    }
  });

  it('scores other people below the default threshold', () => {
    for (const [listed, subject] of OTHER_PERSON) {
      assert.ok(
        nameScore(listed, subject) < DEFAULT_THRESHOLD,
        `${listed} / ${subject}: ${nameScore(listed, subject)}`,
      );
    }
  });

  it('is indifferent to word order and case', () => {
    const names = [
      'ZHELEZNYAKOV, Arkady Semyonovich',
      'Khalid Abd al-Aziz AL-HARZANI',
      'María José Fernández López',
    ];
    fc.assert(
      fc.property(
        fc
          .constantFrom(...names)
          .chain((name) =>
            fc.tuple(
              fc.constant(name),
              fc.shuffledSubarray(name.replace(',', '').split(' '), { minLength: name.split(' ').length }),
            ),
          ),
        fc.boolean(),
        ([listed, words], upper) => {
          const subject = words.join(' ');
          assert.equal(nameScore(listed, upper ? subject.toUpperCase() : subject.toLowerCase()), 1);
        },
      ),
    );
  });
});

describe('Screener', () => {
  let screener: Screener;
  before(async () => {
    screener = new Screener(await loadScreeningLists(DEFAULT_SCREENING_LISTS));
  });

  const ids = (hits: readonly ScreeningHit[]) => hits.map((h) => `${h.listSource}:${h.entryId}`);
  const hitsFor = (name: string, dateOfBirth?: string) =>
    ids(screener.screen(dateOfBirth === undefined ? { name } : { name, dateOfBirth }));

  it('finds every shipped name, primary or alias, as itself', async () => {
    for (const list of await loadScreeningLists(DEFAULT_SCREENING_LISTS)) {
      for (const person of list.people) {
        for (const name of person.names) {
          const hit = screener
            .screen({ name })
            .find((h) => h.listSource === list.source && h.entryId === person.entryId);
          assert.equal(hit?.score, 1, name);
        }
      }
    }
  });

  it('matches a Cyrillic-origin name in Cyrillic and in several transliterations', () => {
    const arkady = ['eu-consolidated:900001', 'ofac-sdn:10001'];
    for (const name of [
      'Аркадий Железняков',
      'Arkadiy Zheleznyakov',
      'Arkadii Zhelezniakov',
      'Arkady Zheleznjakov',
    ]) {
      assert.deepEqual(hitsFor(name), arkady, name);
    }
    // The German transliteration is too far from the English one; OFAC lists it as an alias.
    assert.deepEqual(hitsFor('Arkadij Zhelesnjakow'), ['ofac-sdn:10001']);
    assert.deepEqual(hitsFor('Олександр Федорчук'), ['ofac-sdn:10025']);
    assert.deepEqual(hitsFor('Oleg Panasyuk-Grebenyuk'), ['eu-consolidated:900014']);
  });

  it('matches Chinese and Korean names in characters and in romanisation, in either order', () => {
    for (const name of ['梁浩宇', 'Liang Haoyu', 'Haoyu Liang', 'Leung Ho Yu']) {
      assert.deepEqual(hitsFor(name), ['ofac-sdn:10003'], name);
    }
    for (const name of ['唐宇哲', 'Tang Yuzhe', 'Yuzhe TANG', 'Tang Yu-zhe']) {
      assert.deepEqual(hitsFor(name), ['eu-consolidated:900003'], name);
    }
    assert.deepEqual(hitsFor('Ri Song Chol'), ['eu-consolidated:900009']);
  });

  it('matches an Arabic-origin name in its transliterations', () => {
    for (const name of [
      'Yusuf Abd al-Rahman al-Mazraqi',
      'Youssef Abdulrahman Al Mazraki',
      'Yousef Abdel Rahman Mazraqi',
      'Yussef el-Mazraqui',
      'Yusuf Mazraki',
    ]) {
      assert.deepEqual(hitsFor(name), ['ofac-sdn:10002'], name);
    }
    assert.deepEqual(hitsFor('Khaled Abdulaziz al-Harzani'), ['eu-consolidated:900004', 'pep:20004']);
  });

  it('matches a German name with or without its umlauts', () => {
    for (const name of [
      'Jürgen Pfeiffenmüller',
      'Juergen Pfeiffenmueller',
      'Jurgen Pfeiffenmuller',
      'JURGEN PFEIFENMULLER',
    ]) {
      assert.deepEqual(hitsFor(name), ['eu-consolidated:900002'], name);
    }
    assert.deepEqual(hitsFor('Ursula Hoffmann-Gräber'), ['pep:20003']);
  });

  it('matches small misspellings, missing or extra middle names, and stray punctuation', () => {
    assert.deepEqual(hitsFor('Ramiro Castelanos Rivera'), ['ofac-sdn:10004']);
    assert.deepEqual(hitsFor('Zoltan Varga Kovacz'), ['ofac-sdn:10013']);
    assert.deepEqual(hitsFor('Gennadi Sokolovski'), ['ofac-sdn:10019']);
    assert.deepEqual(hitsFor('Timur Nazarbekov'), ['ofac-sdn:10006']);
    assert.deepEqual(hitsFor('Farzaneh Leila Gholampour-Nikbakht'), ['eu-consolidated:900007']);
    assert.deepEqual(hitsFor('  farzaneh   GHOLAMPOUR. nikbakht!! '), ['eu-consolidated:900007']);
  });

  it('does not hit other people who share a first name, a surname or a stem', () => {
    for (const name of [
      'Arkady Zhelezov', // another surname on the same stem
      'Irina Zheleznyakova', // a relative: the PEP list has her, the sanctions lists do not
      'Zheleznyakov', // a surname alone
      'Liang Hao', // another given name
      'Tang Yu',
      'Vladimir Smirnov', // a common surname, and a PEP called Vladislav Smirnov
      'Anna Smirnova',
      'Jürgen Müller',
      'Mohammed Ali',
      'Khalid Hassan',
      'Nguyen Van Khoa', // TRAN, Van Khoa
      'John Smith',
      'Maria Lopez',
      'Wang Wei',
    ]) {
      const hits = hitsFor(name);
      assert.deepEqual(
        name === 'Irina Zheleznyakova' ? hits.filter((h) => !h.startsWith('pep:')) : hits,
        [],
        name,
      );
    }
    assert.deepEqual(hitsFor('Irina Zheleznyakova'), ['pep:20020']);
  });

  it('raises the score when the date of birth agrees and lowers it when it does not', () => {
    const screen = (dateOfBirth?: string) =>
      screener
        .screen(
          dateOfBirth === undefined
            ? { name: 'Arkady Zheleznyakov' }
            : { name: 'Arkady Zheleznyakov', dateOfBirth },
        )
        .find((h) => h.listSource === 'ofac-sdn');
    const unknown = screen();
    const agrees = screen('1961-03-14');
    const altYear = screen('1962-08-01'); // "alt. DOB 1962"
    const sameYear = screen('1961-07-01');
    const contradicts = screen('1975-01-01');
    assert.equal(unknown?.dateOfBirthMatches, undefined);
    assert.equal(agrees?.dateOfBirthMatches, true);
    assert.equal(altYear?.dateOfBirthMatches, true);
    assert.equal(sameYear?.dateOfBirthMatches, false);
    assert.equal(contradicts?.dateOfBirthMatches, false);
    const scores = [agrees, unknown, sameYear, contradicts].map((h) => h?.score ?? 0);
    assert.deepEqual(
      [...scores].sort((a, b) => b - a),
      scores,
    );
    assert.ok(
      (agrees?.score ?? 0) > (unknown?.score ?? 0) && (contradicts?.score ?? 1) < (sameYear?.score ?? 0),
    );
    // An exact name still reaches the analyst whatever the date; a near one with another birth year does not.
    assert.ok((contradicts?.score ?? 0) >= DEFAULT_THRESHOLD);
    assert.deepEqual(hitsFor('Arkady Zheleznyakova'), ['eu-consolidated:900001', 'ofac-sdn:10001']);
    assert.deepEqual(hitsFor('Arkady Zheleznyakova', '1975-01-01'), []);
    // A year-only subject date, and a listed person without one.
    assert.equal(
      screener.screen({ name: 'Timur Nazarbekov', dateOfBirth: '1959' })[0]?.dateOfBirthMatches,
      true,
    );
    assert.equal(
      screener.screen({ name: 'Mustafa Ramadan el-Ghariani', dateOfBirth: '1970-01-01' })[0]
        ?.dateOfBirthMatches,
      undefined,
    );
  });

  it('orders hits by score, best first, across lists and kinds', () => {
    const twoLists = new Screener(
      [
        listOf(['AL-HARZANI, Khalid Abd al-Aziz'], ['1950']),
        {
          source: 'other',
          kind: 'pep',
          people: [
            {
              listSource: 'other',
              kind: 'pep',
              entryId: '2',
              names: ['HARZANI, Khaled'],
              birthDates: ['1959'],
              program: 'PEP',
            },
          ],
        },
      ],
      { threshold: 0.5 },
    );
    const order = (dateOfBirth?: string) => {
      const name = 'Khalid Abdulaziz Harzani';
      const hits = twoLists.screen(dateOfBirth === undefined ? { name } : { name, dateOfBirth });
      assert.ok(hits.every((hit, i) => i === 0 || (hits[i - 1]?.score ?? 0) > hit.score));
      return hits.map((h) => [h.listSource, h.kind, h.entryId, h.listedName, h.dateOfBirthMatches]);
    };
    // The closer name first, unless the date of birth says otherwise.
    assert.deepEqual(order(), [
      ['test', 'sanctions', '1', 'AL-HARZANI, Khalid Abd al-Aziz', undefined],
      ['other', 'pep', '2', 'HARZANI, Khaled', undefined],
    ]);
    assert.deepEqual(order('1959-02-02'), [
      ['other', 'pep', '2', 'HARZANI, Khaled', true],
      ['test', 'sanctions', '1', 'AL-HARZANI, Khalid Abd al-Aziz', false],
    ]);

    for (const name of ['Khaled Abdulaziz al-Harzani', 'Arkady Zheleznyakov', 'Yusuf Mazraki']) {
      const scores = screener.screen({ name }).map((h) => h.score);
      assert.deepEqual(
        scores,
        [...scores].sort((a, b) => b - a),
      );
      for (const score of scores) assert.equal(score, Math.round(score * 1000) / 1000);
    }
  });

  it('reports the alias that matched, one hit per listed person', () => {
    const hits = screener.screen({ name: 'Alexander Nikolaevich Gritskevich' });
    assert.deepEqual(
      hits.map((h) => [h.entryId, h.listedName]),
      [['900006', 'Alexander Nikolaevich GRITSKEVICH']],
    );
  });

  it('takes a threshold, and refuses names and dates it cannot screen', () => {
    assert.deepEqual(hitsFor('Zheleznyakov'), []);
    const lenient = new Screener([listOf(['ZHELEZNYAKOV, Arkady'])], { threshold: 0.5 });
    assert.equal(lenient.screen({ name: 'Zheleznyakov' }).length, 1);
    assert.throws(() => new Screener([], { threshold: 0 }), RangeError);
    assert.throws(() => new Screener([], { threshold: 1.5 }), RangeError);
    assert.throws(() => screener.screen({ name: ' -- ' }), /no letters/);
    assert.throws(() => screener.screen({ name: 'Jane Doe', dateOfBirth: '01/02/1960' }), /YYYY-MM-DD/);
    assert.throws(() => screener.screen({ name: 'Jane Doe', dateOfBirth: '1960-02-30' }), /YYYY-MM-DD/);
    assert.deepEqual(new Screener([]).screen({ name: 'Jane Doe' }), []);
  });
});
