// Sandbox bank data: people, their accounts and everyday money movements over a period, generated from a
// seed so a sandbox can be rebuilt byte for byte. Pure: no I/O, no clock, no Math.random. Whoever writes
// the result through the ledger can execute the transfers in order: the generator keeps a running balance
// of every account and shrinks or drops a debit that would not fit, because the ledger refuses overdrafts.
import { generateNationalId, type NationalIdType } from '../kyc/validators.ts';

export interface SandboxPerson {
  readonly key: string;
  /** Unique: the seed and the customer number, e.g. 's1-customer0007'. */
  readonly username: string;
  /** Latin script; Chinese names in pinyin, family name first. */
  readonly legalName: string;
  readonly dateOfBirth: string;
  /** ISO 3166-1 alpha-2. */
  readonly nationality: string;
  readonly nationalId: {
    readonly type: 'cn_resident_id' | 'uk_nino' | 'us_ssn';
    readonly number: string;
  } | null;
  readonly address: {
    readonly lines: readonly string[];
    readonly city: string;
    readonly postCode: string;
    readonly country: string;
  };
  /** At a domain reserved for examples (RFC 2606 §3), so no mail can reach a real person. */
  readonly email: string;
  /** E.164, in a mobile range of the nationality's numbering plan. */
  readonly phone: string;
}

export interface SandboxAccount {
  readonly key: string;
  readonly owner: string;
  readonly product: 'current' | 'savings';
  readonly currency: 'EUR' | 'GBP' | 'USD';
  readonly name: string;
}

export interface PlannedTransfer {
  readonly at: Date;
  /** An account key, or 'external:<currency>' for money from another bank. */
  readonly from: string;
  /** An account key, or 'external:<currency>' for money to another bank. */
  readonly to: string;
  readonly currency: string;
  readonly amountMinor: bigint;
  /** The other party as the customer sees it: the payee of money out, the payer of money in; between two customers, the payee. */
  readonly counterparty: string;
  readonly reference: string;
  readonly category:
    | 'salary'
    | 'rent'
    | 'groceries'
    | 'transport'
    | 'subscriptions'
    | 'dining'
    | 'utilities'
    | 'transfer'
    | 'savings'
    | 'opening_deposit';
}

export interface SandboxData {
  readonly people: readonly SandboxPerson[];
  readonly accounts: readonly SandboxAccount[];
  readonly transfers: readonly PlannedTransfer[];
}

export const SANDBOX_CUSTOMERS_MAX = 100_000;
const PERIOD_DAYS_MAX = 3_660;
// The whole plan is held in memory: about 0.73 transfers and 0.5 KiB per customer-day, so this bound (10,000
// customers for a year, or the largest sandbox for a month) stays near 2.7 million transfers and 1.5 GiB.
const CUSTOMER_DAYS_MAX = 3_660_000;

type Category = PlannedTransfer['category'];
type Currency = SandboxAccount['currency'];
type Nationality = 'GB' | 'CN' | 'US' | 'DE' | 'FR' | 'ES' | 'IT' | 'NL';
type Residence = Exclude<Nationality, 'CN'>;
type Random = () => number;

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

// --- Seeded randomness ----------------------------------------------------------------------------------

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128 bits of state, passes PractRand. */
function sfc32(a: number, b: number, c: number, d: number): Random {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4_294_967_296;
  };
}

/** One independent stream per customer, so a customer's data does not depend on how much others drew. */
function streamFor(seed: number, stream: number): Random {
  // The whole safe-integer seed goes into the state (low and high 32 bits), so distinct seeds never share one.
  const low = seed >>> 0;
  const high = Math.floor(seed / 4_294_967_296) >>> 0;
  const random = sfc32(low, high, stream >>> 0, 0x9e3779b9);
  // The first outputs of a counting generator seeded with small numbers are correlated; discard them.
  for (let i = 0; i < 15; i++) random();
  return random;
}

function intBetween(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

function chance(random: Random, probability: number): boolean {
  return random() < probability;
}

function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

/** `count` distinct items, in the order drawn. */
function pickDistinct<T>(random: Random, items: readonly T[], count: number): T[] {
  const pool = [...items];
  const chosen: T[] = [];
  while (chosen.length < count && pool.length > 0) {
    chosen.push(pool.splice(Math.floor(random() * pool.length), 1)[0] as T);
  }
  return chosen;
}

function digits(random: Random, count: number): string {
  let text = '';
  for (let i = 0; i < count; i++) text += String(Math.floor(random() * 10));
  return text;
}

// --- Money ----------------------------------------------------------------------------------------------

// Ranges below are written in whole euros and scaled by a rough price level, so a GBP salary and a USD
// coffee land at plausible figures. Every currency here has two decimals (ISO 4217).
const PRICE_LEVEL_PERCENT: Readonly<Record<Currency, bigint>> = { EUR: 100n, GBP: 87n, USD: 110n };
const CENTS = 100n;

function majorUnits(euros: number, currency: Currency): bigint {
  return (BigInt(euros) * CENTS * PRICE_LEVEL_PERCENT[currency]) / 100n;
}

/** A random amount in [min, max] euros' worth of `currency`, to the cent. */
function amountBetween(random: Random, minEuros: number, maxEuros: number, currency: Currency): bigint {
  const min = majorUnits(minEuros, currency);
  const span = majorUnits(maxEuros, currency) - min + 1n;
  return min + BigInt(Math.floor(random() * Number(span)));
}

/** `amount` scaled by `basisPoints` / 10 000, to the cent, rounded down. */
function scaled(amount: bigint, basisPoints: number): bigint {
  return (amount * BigInt(basisPoints)) / 10_000n;
}

/** Rounded down to a multiple of `step` whole units, never below one step. */
function roundedDown(amount: bigint, stepUnits: bigint): bigint {
  const step = stepUnits * CENTS;
  const rounded = (amount / step) * step;
  return rounded > 0n ? rounded : step;
}

// --- Who the customers are -------------------------------------------------------------------------------

/** A pool written as one comma-separated line, so a few dozen names stay a few lines once formatted. */
function list(text: string): readonly string[] {
  return text.split(', ');
}

interface NationalityProfile {
  /** Relative share of customers. */
  readonly weight: number;
  readonly givenNames: readonly string[];
  readonly familyNames: readonly string[];
  /** Chinese names are written family name first, also in pinyin. */
  readonly familyNameFirst: boolean;
  readonly nationalId: NationalIdType | null;
  readonly phone: (random: Random) => string;
  /** Where people of this nationality live; the residence decides currency, address and shops. */
  readonly residences: readonly Residence[];
}

/** A mobile number: country code, a mobile range prefix, then random subscriber digits. */
function mobile(callingCode: string, prefixes: string, subscriberDigits: number) {
  const ranges = list(prefixes);
  return (random: Random) => `+${callingCode}${pick(random, ranges)}${digits(random, subscriberDigits)}`;
}

const US_AREA_CODES = list('206, 212, 213, 303, 305, 310, 312, 404, 415, 512, 617, 646, 702, 713, 718, 773');

// Prefixes are ranges libphonenumber's full metadata classes as mobile, avoiding the blocks set aside for
// fiction (Ofcom 07700 900000-900999), the sparsely allocated ones (UK 077/079, NL 060/067/069, FR 063/069)
// and the +44 ranges of the Crown Dependencies (Isle of Man 07452/07524, Jersey 07509/07829, Guernsey
// 07839), so every number drawn validates and belongs to the nationality's own country.
const NATIONALITIES: Readonly<Record<Nationality, NationalityProfile>> = {
  GB: {
    weight: 20,
    givenNames: list(
      'Oliver, George, Harry, Jack, Charlie, Thomas, James, William, Daniel, Samuel, Joseph, Alfie, Oscar, ' +
        'Henry, Edward, Lewis, Olivia, Amelia, Isla, Emily, Ava, Sophie, Grace, Lily, Freya, Charlotte, ' +
        'Jessica, Ella, Poppy, Eleanor, Hannah, Ruby',
    ),
    familyNames: list(
      'Smith, Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson, Roberts, Robinson, ' +
        'Thompson, Wright, Walker, White, Edwards, Hughes, Green, Hall, Lewis, Harris, Clarke, Patel, Jackson, ' +
        "Wood, Turner, Martin, O'Brien, Khan",
    ),
    familyNameFirst: false,
    nationalId: 'uk_nino',
    phone: mobile(
      '44',
      '740, 741, 742, 743, 744, 746, 747, 748, 749, 751, 753, 754, 755, 756, 757, 758, 759, 780, 781, 784, ' +
        '785, 786, 787, 788, 789',
      7,
    ),
    residences: ['GB'],
  },
  CN: {
    weight: 10,
    givenNames: list(
      'Wei, Fang, Na, Min, Jing, Li, Qiang, Lei, Jun, Yang, Yong, Yan, Jie, Tao, Ming, Chao, Xiuying, Xia, ' +
        'Ping, Gang, Hui, Hao, Yu, Xin, Yi, Ling, Zihan, Yuxuan, Haoran, Zhiwei, Xiaoming, Meiling, Lan, Kai, ' +
        'Rui, Shu',
    ),
    familyNames: list(
      'Wang, Li, Zhang, Liu, Chen, Yang, Huang, Zhao, Wu, Zhou, Xu, Sun, Ma, Zhu, Hu, Guo, He, Gao, Lin, Luo, ' +
        'Zheng, Liang, Xie, Song, Tang, Han, Feng, Deng, Cao, Peng, Zeng, Xiao, Tian, Dong, Pan, Yuan',
    ),
    familyNameFirst: true,
    nationalId: 'cn_resident_id',
    phone: mobile(
      '86',
      '130, 131, 132, 135, 136, 137, 138, 139, 150, 151, 152, 155, 158, 159, 166, 176, 177, 180, 181, 185, ' +
        '186, 187, 188, 189, 198, 199',
      8,
    ),
    // The bank is European: Chinese customers are residents of the euro area who keep their home number.
    residences: ['DE', 'FR', 'ES', 'IT', 'NL'],
  },
  US: {
    weight: 15,
    givenNames: list(
      'James, Michael, Robert, John, David, William, Richard, Joseph, Christopher, Matthew, Anthony, Andrew, ' +
        'Joshua, Ryan, Tyler, Brandon, Mary, Patricia, Jennifer, Linda, Elizabeth, Sarah, Jessica, Ashley, ' +
        'Emily, Madison, Megan, Hannah, Lauren, Brittany, Maria, Kimberly',
    ),
    familyNames: list(
      'Smith, Johnson, Williams, Brown, Jones, Garcia, Miller, Davis, Rodriguez, Martinez, Hernandez, Lopez, ' +
        'Gonzalez, Wilson, Anderson, Thomas, Taylor, Moore, Jackson, Martin, Lee, Thompson, White, Harris, ' +
        'Clark, Lewis, Robinson, Walker, Young, Allen, Nguyen, Kim',
    ),
    familyNameFirst: false,
    nationalId: 'us_ssn',
    // NANP: area code, then an exchange that never starts with 0 or 1, then four digits.
    phone: (random) => `+1${pick(random, US_AREA_CODES)}${intBetween(random, 2, 9)}${digits(random, 6)}`,
    residences: ['US'],
  },
  DE: {
    weight: 15,
    givenNames: list(
      'Lukas, Leon, Finn, Jonas, Paul, Felix, Maximilian, Elias, Noah, Ben, Tobias, Stefan, Michael, Andreas, ' +
        'Thomas, Jürgen, Mia, Emma, Hannah, Sophie, Lena, Lea, Anna, Marie, Laura, Julia, Katharina, Sabine, ' +
        'Petra, Ursula, Charlotte, Greta',
    ),
    familyNames: list(
      'Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann, Schäfer, Koch, ' +
        'Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, Zimmermann, Braun, Krüger, Hofmann, ' +
        'Hartmann, Lange, Schmitt, Werner, Krause, Meier, Lehmann',
    ),
    familyNameFirst: false,
    nationalId: null,
    phone: mobile(
      '49',
      '151, 152, 157, 159, 160, 162, 163, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179',
      8,
    ),
    residences: ['DE'],
  },
  FR: {
    weight: 12,
    givenNames: list(
      'Gabriel, Louis, Raphaël, Jules, Adam, Lucas, Léo, Hugo, Arthur, Nathan, Théo, Julien, Nicolas, Pierre, ' +
        'François, Mathieu, Jade, Louise, Emma, Alice, Chloé, Lina, Léa, Manon, Camille, Inès, Sarah, ' +
        'Juliette, Claire, Élodie, Margaux, Céline',
    ),
    familyNames: list(
      'Martin, Bernard, Thomas, Petit, Robert, Richard, Durand, Dubois, Moreau, Laurent, Simon, Michel, ' +
        'Lefèvre, Leroy, Roux, David, Bertrand, Morel, Fournier, Girard, Bonnet, Dupont, Lambert, Fontaine, ' +
        'Rousseau, Vincent, Muller, Lefebvre, Faure, Mercier',
    ),
    familyNameFirst: false,
    nationalId: null,
    phone: mobile('33', '60, 61, 62, 64, 65, 66, 67, 68, 75, 76, 77, 78', 7),
    residences: ['FR'],
  },
  ES: {
    weight: 10,
    givenNames: list(
      'Hugo, Martín, Lucas, Mateo, Leo, Daniel, Alejandro, Pablo, Manuel, Álvaro, Javier, Sergio, Carlos, ' +
        'Jorge, Diego, Antonio, Lucía, Sofía, Martina, María, Julia, Paula, Valeria, Emma, Daniela, Carmen, ' +
        'Elena, Laura, Marta, Ana, Cristina, Irene',
    ),
    familyNames: list(
      'García, Rodríguez, González, Fernández, López, Martínez, Sánchez, Pérez, Gómez, Martín, Jiménez, Ruiz, ' +
        'Hernández, Díaz, Moreno, Muñoz, Álvarez, Romero, Alonso, Gutiérrez, Navarro, Torres, Domínguez, ' +
        'Vázquez, Ramos, Gil, Ramírez, Serrano, Blanco, Molina',
    ),
    familyNameFirst: false,
    nationalId: null,
    phone: mobile('34', '60, 61, 62, 63, 64, 65, 66, 67, 68, 69', 7),
    residences: ['ES'],
  },
  IT: {
    weight: 10,
    givenNames: list(
      'Leonardo, Francesco, Alessandro, Lorenzo, Mattia, Andrea, Gabriele, Riccardo, Tommaso, Edoardo, Marco, ' +
        'Giuseppe, Luca, Davide, Giovanni, Stefano, Sofia, Giulia, Aurora, Alice, Ginevra, Emma, Giorgia, ' +
        'Beatrice, Chiara, Francesca, Martina, Sara, Valentina, Elena, Federica, Silvia',
    ),
    familyNames: list(
      'Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, Bruno, Gallo, Conti, ' +
        'De Luca, Mancini, Costa, Giordano, Rizzo, Lombardi, Moretti, Barbieri, Fontana, Santoro, Mariani, ' +
        'Rinaldi, Caruso, Ferrara, Galli, Martini, Leone',
    ),
    familyNameFirst: false,
    nationalId: null,
    phone: mobile('39', '320, 328, 333, 335, 338, 340, 345, 347, 349, 366, 380, 393', 7),
    residences: ['IT'],
  },
  NL: {
    weight: 8,
    givenNames: list(
      'Daan, Sem, Lucas, Levi, Finn, Milan, Bram, Jesse, Thijs, Ruben, Lars, Sander, Pieter, Joost, Jeroen, ' +
        'Koen, Emma, Julia, Tess, Sophie, Zoë, Anna, Sanne, Fleur, Lotte, Eva, Lisa, Femke, Anouk, Marloes, ' +
        'Ilse, Noor',
    ),
    familyNames: list(
      'de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit, Meijer, de Boer, ' +
        'Mulder, de Groot, Bos, Vos, Peters, Hendriks, van Leeuwen, Dekker, Brouwer, de Wit, Dijkstra, Smits, ' +
        'de Graaf, van der Meer, van der Linden, Kok, Jacobs, de Haan, Vermeulen',
    ),
    familyNameFirst: false,
    nationalId: null,
    phone: mobile('31', '61, 62, 63, 64, 65, 68', 7),
    residences: ['NL'],
  },
};

const NATIONALITY_CODES = Object.keys(NATIONALITIES) as Nationality[];
const NATIONALITY_WEIGHT_TOTAL = NATIONALITY_CODES.reduce((sum, code) => sum + NATIONALITIES[code].weight, 0);

function pickNationality(random: Random): Nationality {
  let ticket = random() * NATIONALITY_WEIGHT_TOTAL;
  for (const code of NATIONALITY_CODES) {
    ticket -= NATIONALITIES[code].weight;
    if (ticket < 0) return code;
  }
  return NATIONALITY_CODES[NATIONALITY_CODES.length - 1] as Nationality;
}

// --- Where they live and spend ----------------------------------------------------------------------------

interface City {
  readonly name: string;
  readonly postCode: (random: Random) => string;
}

/** A merchant and the range of one purchase there, in euros' worth. */
interface Merchant {
  readonly name: string;
  readonly minEuros: number;
  readonly maxEuros: number;
}

interface ResidenceProfile {
  readonly currency: Currency;
  /** Standard time; daylight saving is ignored, it only decides which UTC hours look like shop hours. */
  readonly utcOffsetHours: number;
  readonly cities: readonly City[];
  readonly streetLine: (random: Random) => string;
  readonly employerSuffix: string;
  readonly lettingAgents: readonly string[];
  readonly groceries: readonly string[];
  /** Repeated entries are the common, cheap trips: commuting outnumbers fuel and taxis. */
  readonly transport: readonly Merchant[];
  readonly dining: readonly string[];
  readonly utilities: readonly string[];
}

function numberedRange(first: number, last: number): (random: Random) => string {
  return (random) => String(intBetween(random, first, last)).padStart(5, '0');
}

function oneOf(codes: string): (random: Random) => string {
  const pool = list(codes);
  return (random) => pick(random, pool);
}

// Royal Mail: outward code, space, a digit and two letters from a 20-letter alphabet (no C I K M O V).
const UK_INWARD_LETTERS = [...'ABDEFGHJLNPQRSTUWXYZ'];
function ukPostCode(outwardCodes: string): (random: Random) => string {
  const outwards = list(outwardCodes);
  return (random) =>
    `${pick(random, outwards)} ${intBetween(random, 1, 9)}${pick(random, UK_INWARD_LETTERS)}${pick(random, UK_INWARD_LETTERS)}`;
}

// PostNL: four digits, space, two letters; F, I, O, Q, U and Y are not used, nor the pairs SA, SD and SS.
const NL_POSTCODE_LETTERS = [...'ABCEGHJKLMNPRSTVWXZ'];
function nlPostCode(first: number, last: number): (random: Random) => string {
  return (random) => {
    let letters = `${pick(random, NL_POSTCODE_LETTERS)}${pick(random, NL_POSTCODE_LETTERS)}`;
    if (letters === 'SA' || letters === 'SD' || letters === 'SS') letters = 'AB';
    return `${intBetween(random, first, last)} ${letters}`;
  };
}

/** '12 High Street' when `numberFirst` (GB, US, FR), else 'Hauptstraße 12'. */
function streetLine(
  streetNames: string,
  numberMax: number,
  numberFirst: boolean,
): (random: Random) => string {
  const streets = list(streetNames);
  return (random) => {
    const street = pick(random, streets);
    const number = intBetween(random, 1, numberMax);
    return numberFirst ? `${number} ${street}` : `${street} ${number}`;
  };
}

// Spanish addresses add the floor and door: 'Calle Mayor 12, 3º B'.
const spanishStreet = streetLine(
  'Calle Mayor, Calle de Alcalá, Avenida de la Constitución, Calle del Sol, Paseo de Gracia, Calle Real, ' +
    'Calle de Toledo',
  150,
  false,
);

const merchant = (name: string, minEuros: number, maxEuros: number): Merchant => ({
  name,
  minEuros,
  maxEuros,
});

const RESIDENCES: Readonly<Record<Residence, ResidenceProfile>> = {
  GB: {
    currency: 'GBP',
    utcOffsetHours: 0,
    cities: [
      { name: 'London', postCode: ukPostCode('E1, E8, N1, N7, NW3, SE15, SW11, W2') },
      { name: 'Manchester', postCode: ukPostCode('M1, M14, M20') },
      { name: 'Birmingham', postCode: ukPostCode('B5, B15, B29') },
      { name: 'Leeds', postCode: ukPostCode('LS1, LS6, LS8') },
      { name: 'Bristol', postCode: ukPostCode('BS1, BS6, BS8') },
      { name: 'Edinburgh', postCode: ukPostCode('EH1, EH3, EH9') },
      { name: 'Glasgow', postCode: ukPostCode('G3, G12, G41') },
      { name: 'Cardiff', postCode: ukPostCode('CF10, CF24') },
    ],
    streetLine: streetLine(
      'High Street, Station Road, Church Lane, Victoria Road, Park Avenue, Albert Street, Mill Lane, ' +
        'Queens Road, Green Lane, Kings Gardens, Manor Close',
      180,
      true,
    ),
    employerSuffix: 'Ltd',
    lettingAgents: list('Harbourside Lettings, Redbrick Property Management, Keystone Homes, Thames Estates'),
    groceries: list("Tesco, Sainsbury's, Asda, Aldi, Lidl, Waitrose, Co-op, Morrisons"),
    transport: [
      merchant('Transport for London', 2, 9),
      merchant('Transport for London', 2, 9),
      merchant('National Rail', 6, 45),
      merchant('Trainline', 15, 80),
      merchant('Uber', 9, 32),
      merchant('Shell', 35, 80),
    ],
    dining: list("Pret A Manger, The Red Lion, Nando's, Costa Coffee, Wagamama, The Crown, Dishoom"),
    utilities: list('British Gas, Octopus Energy, EDF Energy, Thames Water'),
  },
  US: {
    currency: 'USD',
    utcOffsetHours: -5,
    cities: [
      { name: 'New York', postCode: numberedRange(10_001, 10_040) },
      { name: 'Chicago', postCode: numberedRange(60_601, 60_661) },
      { name: 'Austin', postCode: numberedRange(78_701, 78_759) },
      { name: 'Seattle', postCode: numberedRange(98_101, 98_199) },
      { name: 'Boston', postCode: numberedRange(2_108, 2_136) },
      { name: 'San Francisco', postCode: numberedRange(94_102, 94_134) },
      { name: 'Denver', postCode: numberedRange(80_202, 80_239) },
      { name: 'Atlanta', postCode: numberedRange(30_303, 30_350) },
    ],
    streetLine: streetLine(
      'Maple Street, Oak Avenue, Pine Street, Cedar Drive, Elm Street, Washington Boulevard, Lake Road, ' +
        'Hill Street, Park Avenue, Main Street',
      9_800,
      true,
    ),
    employerSuffix: 'Inc.',
    lettingAgents: list('Greystone Property Management, Lakeside Apartments LLC, Summit Residential'),
    groceries: list("Walmart, Kroger, Whole Foods Market, Trader Joe's, Safeway, Costco, Target"),
    transport: [
      merchant('MTA', 3, 6),
      merchant('MTA', 3, 6),
      merchant('Uber', 10, 40),
      merchant('Lyft', 10, 40),
      merchant('Shell', 30, 70),
      merchant('Chevron', 30, 70),
    ],
    dining: list("Starbucks, Chipotle, Corner Diner, Sweetgreen, Joe's Pizza, Blue Bottle Coffee"),
    utilities: list('Con Edison, PG&E, Duke Energy, City Water Department'),
  },
  DE: {
    currency: 'EUR',
    utcOffsetHours: 1,
    cities: [
      { name: 'Berlin', postCode: numberedRange(10_115, 14_199) },
      { name: 'Hamburg', postCode: numberedRange(20_095, 22_769) },
      { name: 'München', postCode: numberedRange(80_331, 81_929) },
      { name: 'Köln', postCode: numberedRange(50_667, 51_149) },
      { name: 'Frankfurt am Main', postCode: numberedRange(60_306, 60_599) },
      { name: 'Leipzig', postCode: numberedRange(4_103, 4_357) },
    ],
    streetLine: streetLine(
      'Hauptstraße, Bahnhofstraße, Schillerstraße, Goethestraße, Lindenallee, Gartenweg, Bergstraße, ' +
        'Friedrichstraße, Kastanienweg',
      140,
      false,
    ),
    employerSuffix: 'GmbH',
    lettingAgents: list('Wohnbau Nord GmbH, Stadtwohnen Immobilien, Hausverwaltung Lindner'),
    groceries: list('Rewe, Edeka, Aldi Süd, Lidl, Kaufland, Netto, Penny'),
    transport: [
      merchant('BVG', 3, 10),
      merchant('BVG', 3, 10),
      merchant('Deutsche Bahn', 10, 90),
      merchant('FreeNow', 10, 30),
      merchant('Aral', 35, 80),
    ],
    dining: list('Café Einstein, Zum Goldenen Hirsch, Vapiano, Dean & David, Brauhaus am Markt, Backwerk'),
    utilities: list('Vattenfall, E.ON Energie, Stadtwerke, EnBW'),
  },
  FR: {
    currency: 'EUR',
    utcOffsetHours: 1,
    cities: [
      { name: 'Paris', postCode: numberedRange(75_001, 75_020) },
      { name: 'Lyon', postCode: numberedRange(69_001, 69_009) },
      { name: 'Marseille', postCode: numberedRange(13_001, 13_016) },
      { name: 'Toulouse', postCode: oneOf('31000, 31100, 31200, 31300, 31400, 31500') },
      { name: 'Bordeaux', postCode: oneOf('33000, 33100, 33200, 33300, 33800') },
      { name: 'Lille', postCode: oneOf('59000, 59160, 59260, 59800') },
    ],
    streetLine: streetLine(
      'rue de la République, avenue Victor Hugo, boulevard Voltaire, rue Pasteur, rue du Moulin, ' +
        'rue Jean Jaurès, place de la Mairie, rue des Lilas',
      120,
      true,
    ),
    employerSuffix: 'SAS',
    lettingAgents: list('Foncia Gestion, Immobilière du Centre, Agence des Quais'),
    groceries: list('Carrefour, E.Leclerc, Monoprix, Auchan, Intermarché, Franprix, Lidl'),
    transport: [
      merchant('RATP', 2, 9),
      merchant('RATP', 2, 9),
      merchant('SNCF Connect', 15, 95),
      merchant('G7 Taxi', 12, 40),
      merchant('TotalEnergies', 35, 80),
    ],
    dining: list('Café de la Gare, Brasserie du Port, Paul, Le Petit Bistro, Boulangerie Martin, Chez Léon'),
    utilities: list('EDF, Engie, Veolia Eau, TotalEnergies Électricité'),
  },
  ES: {
    currency: 'EUR',
    utcOffsetHours: 1,
    cities: [
      { name: 'Madrid', postCode: numberedRange(28_001, 28_055) },
      { name: 'Barcelona', postCode: numberedRange(8_001, 8_042) },
      { name: 'Valencia', postCode: numberedRange(46_001, 46_026) },
      { name: 'Sevilla', postCode: numberedRange(41_001, 41_020) },
      { name: 'Bilbao', postCode: numberedRange(48_001, 48_015) },
    ],
    streetLine: (random) =>
      `${spanishStreet(random)}, ${intBetween(random, 1, 8)}º ${pick(random, ['A', 'B', 'C', 'D'])}`,
    employerSuffix: 'S.L.',
    lettingAgents: list('Inmobiliaria Sol, Gestión de Alquileres Norte, Fincas Mediterráneo'),
    groceries: list('Mercadona, Carrefour, Dia, Lidl, Eroski, Alcampo, Consum'),
    transport: [
      merchant('Metro de Madrid', 2, 6),
      merchant('Metro de Madrid', 2, 6),
      merchant('Renfe', 8, 75),
      merchant('Cabify', 8, 28),
      merchant('Repsol', 35, 75),
    ],
    dining: list('Bar Manolo, Cervecería La Plaza, Taberna del Puerto, Café Central, Pans & Company'),
    utilities: list('Iberdrola, Endesa, Naturgy, Canal de Isabel II'),
  },
  IT: {
    currency: 'EUR',
    utcOffsetHours: 1,
    cities: [
      { name: 'Roma', postCode: numberedRange(118, 199) },
      { name: 'Milano', postCode: numberedRange(20_121, 20_162) },
      { name: 'Torino', postCode: numberedRange(10_121, 10_156) },
      { name: 'Napoli', postCode: numberedRange(80_121, 80_147) },
      { name: 'Bologna', postCode: numberedRange(40_121, 40_141) },
      { name: 'Firenze', postCode: numberedRange(50_121, 50_145) },
    ],
    streetLine: streetLine(
      'Via Roma, Via Garibaldi, Corso Vittorio Emanuele II, Via Mazzini, Via Dante, Via Cavour, Piazza Verdi',
      200,
      false,
    ),
    employerSuffix: 'S.r.l.',
    lettingAgents: list('Immobiliare Centro, Gestioni Case Italia, Agenzia Casa Serena'),
    groceries: list('Esselunga, Coop, Conad, Carrefour Express, Pam, Lidl, Eurospin'),
    transport: [
      merchant('ATM Milano', 2, 5),
      merchant('ATM Milano', 2, 5),
      merchant('Trenitalia', 10, 85),
      merchant('Italo', 20, 90),
      merchant('Eni', 35, 80),
    ],
    dining: list('Bar Centrale, Trattoria da Luca, Pizzeria Napoli, Caffè Roma, Osteria del Ponte'),
    utilities: list('Enel Energia, Eni Plenitude, A2A, Hera'),
  },
  NL: {
    currency: 'EUR',
    utcOffsetHours: 1,
    cities: [
      { name: 'Amsterdam', postCode: nlPostCode(1011, 1109) },
      { name: 'Rotterdam', postCode: nlPostCode(3011, 3089) },
      { name: 'Utrecht', postCode: nlPostCode(3511, 3585) },
      { name: 'Den Haag', postCode: nlPostCode(2491, 2599) },
      { name: 'Eindhoven', postCode: nlPostCode(5611, 5658) },
      { name: 'Groningen', postCode: nlPostCode(9711, 9747) },
    ],
    streetLine: streetLine(
      'Kerkstraat, Dorpsstraat, Prinsengracht, Molenweg, Stationsweg, Julianalaan, Wilhelminastraat, ' +
        'Beatrixlaan',
      250,
      false,
    ),
    employerSuffix: 'B.V.',
    lettingAgents: list('Woonstad Verhuur, Van der Linden Vastgoed, Grachtenhuis Beheer'),
    groceries: list('Albert Heijn, Jumbo, Lidl, Plus, Dirk, Aldi'),
    transport: [
      merchant('GVB', 2, 8),
      merchant('GVB', 2, 8),
      merchant('NS', 5, 40),
      merchant('Uber', 10, 35),
      merchant('Shell', 35, 80),
    ],
    dining: list('Café de Jaren, Eetcafé De Hoek, Febo, Bagels & Beans, Restaurant De Kas'),
    utilities: list('Vattenfall, Eneco, Essent, Waternet'),
  },
};

// Fictional employers (Microsoft's sample company names), given the residence's legal-form suffix.
const EMPLOYERS = list(
  'Northwind, Contoso, Fabrikam, Tailspin Toys, Woodgrove, Litware, Proseware, Adatum, Wide World Importers, ' +
    'Blue Yonder Airlines, Lucerne Publishing, Coho Winery, Alpine Ski House, Fourth Coffee, Trey Research, ' +
    'Wingtip Toys, Humongous Insurance, Relecloud',
);

// Fictional streaming and app subscriptions; the price is the same figure in every currency, as such
// services tend to set it.
const SUBSCRIPTIONS: readonly { readonly name: string; readonly priceMinor: bigint }[] = [
  { name: 'Vidora Stream', priceMinor: 1_299n },
  { name: 'Cinewave', priceMinor: 899n },
  { name: 'Tunefold Music', priceMinor: 1_099n },
  { name: 'Cloudnest Storage', priceMinor: 299n },
  { name: 'Pagewise Books', priceMinor: 999n },
  { name: 'Fitloop', priceMinor: 1_499n },
  { name: 'Newsleaf Digital', priceMinor: 699n },
  { name: 'Playforge Games', priceMinor: 1_699n },
  { name: 'Lingomo', priceMinor: 799n },
  { name: 'Podhaven', priceMinor: 499n },
];

const PEER_REFERENCES = list(
  'Dinner, Thanks!, Concert tickets, Birthday present, Holiday share, Taxi split, Paying you back, ' +
    'Football tickets, Flowers, Weekend away, Rent share, Lunch',
);

const EMAIL_DOMAINS = list('example.com, example.org, example.net');

const MONTH_NAMES = list(
  'January, February, March, April, May, June, July, August, September, October, November, December',
);

// --- One customer: identity and habits -------------------------------------------------------------------

interface Habits {
  readonly residence: ResidenceProfile;
  readonly currentAccount: number;
  readonly savingsAccount: number | undefined;
  readonly currency: Currency;
  readonly salaryMinor: bigint;
  /** Day of the month the salary is due, 25-28; paid on the Friday before when it falls on a weekend. */
  readonly payday: number;
  readonly employer: string;
  readonly rentMinor: bigint;
  readonly rentDay: number;
  readonly landlord: string;
  readonly utility: string;
  readonly utilityMinor: bigint;
  readonly utilityDay: number;
  readonly subscriptions: readonly {
    readonly name: string;
    readonly priceMinor: bigint;
    readonly day: number;
  }[];
  readonly savingsMinor: bigint;
  readonly favouriteGrocer: string;
  /** 1 (Monday) to 6 (Saturday): the weekly shop. */
  readonly groceryWeekday: number;
  readonly transportPerWeekday: number;
  readonly diningPerDay: number;
}

interface Customer {
  /** Position among the customers banking in the same currency, the pool transfers between customers draw from. */
  peerIndex: number;
  readonly person: SandboxPerson;
  readonly habits: Habits;
  readonly random: Random;
}

function asciiSlug(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{Diacritic}/gu, '')
    .replace(/ß/g, 'ss')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '.')
    .replace(/^\.+|\.+$/g, '');
}

function formatDateOnly(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Between 20 and 80 years before `toMs`, weighted to the middle as a bank's customers are. */
function dateOfBirth(random: Random, toMs: number): string {
  const to = new Date(toMs);
  const latest = Date.UTC(to.getUTCFullYear() - 20, to.getUTCMonth(), to.getUTCDate()) - DAY_MS;
  const earliest = Date.UTC(to.getUTCFullYear() - 80, to.getUTCMonth(), to.getUTCDate()) + DAY_MS;
  const spanDays = (latest - earliest) / DAY_MS;
  const offsetDays = Math.floor(((random() + random()) / 2) * (spanDays + 1));
  return formatDateOnly(earliest + offsetDays * DAY_MS);
}

function makeCustomer(index: number, seed: number, toMs: number, accounts: SandboxAccount[]): Customer {
  const random = streamFor(seed, index);
  const key = `c${String(index + 1).padStart(4, '0')}`;
  const nationality = pickNationality(random);
  const origin = NATIONALITIES[nationality];
  const given = pick(random, origin.givenNames);
  // Spaniards carry both parents' family names.
  const family =
    nationality === 'ES'
      ? pickDistinct(random, origin.familyNames, 2).join(' ')
      : pick(random, origin.familyNames);
  const legalName = origin.familyNameFirst ? `${family} ${given}` : `${given} ${family}`;
  // A customer number, not the name: usernames are stored in the clear and names must not be. The seed
  // keeps two seeded populations in one bank apart.
  const username = `s${seed}-customer${String(index + 1).padStart(4, '0')}`;
  const birth = dateOfBirth(random, toMs);
  const residenceCode = pick(random, origin.residences);
  const residence = RESIDENCES[residenceCode];
  const city = pick(random, residence.cities);
  const lines = [residence.streetLine(random)];
  if (residenceCode === 'GB' && chance(random, 0.3)) lines.unshift(`Flat ${intBetween(random, 1, 24)}`);
  if (residenceCode === 'US' && chance(random, 0.4))
    lines.push(`Apt ${intBetween(random, 1, 30)}${pick(random, ['A', 'B', 'C', 'D'])}`);

  const person: SandboxPerson = {
    key,
    username,
    legalName,
    dateOfBirth: birth,
    nationality,
    nationalId:
      origin.nationalId === null
        ? null
        : { type: origin.nationalId, number: generateNationalId(origin.nationalId, random, birth) },
    address: { lines, city: city.name, postCode: city.postCode(random), country: residenceCode },
    email: `${asciiSlug(legalName)}.${String(index + 1).padStart(4, '0')}@${pick(random, EMAIL_DOMAINS)}`,
    phone: origin.phone(random),
  };

  const currency = residence.currency;
  const currentAccount = accounts.length;
  accounts.push({
    key: `${key}-current-${currency.toLowerCase()}`,
    owner: key,
    product: 'current',
    currency,
    name: 'Current account',
  });
  let savingsAccount: number | undefined;
  if (chance(random, 0.3)) {
    savingsAccount = accounts.length;
    accounts.push({
      key: `${key}-savings-${currency.toLowerCase()}`,
      owner: key,
      product: 'savings',
      currency,
      name: 'Savings account',
    });
  }

  const salaryMinor = roundedDown(amountBetween(random, 1_800, 5_500, currency), 1n);
  const landlordOrigin = NATIONALITIES[residenceCode];
  const habits: Habits = {
    residence,
    currentAccount,
    savingsAccount,
    currency,
    salaryMinor,
    payday: intBetween(random, 25, 28),
    employer: `${pick(random, EMPLOYERS)} ${residence.employerSuffix}`,
    rentMinor: roundedDown(scaled(salaryMinor, intBetween(random, 2_200, 3_500)), 10n),
    rentDay: intBetween(random, 1, 3),
    landlord: chance(random, 0.5)
      ? pick(random, residence.lettingAgents)
      : `${pick(random, landlordOrigin.givenNames).slice(0, 1)}. ${pick(random, landlordOrigin.familyNames)}`,
    utility: pick(random, residence.utilities),
    utilityMinor: amountBetween(random, 55, 160, currency),
    utilityDay: intBetween(random, 5, 20),
    subscriptions: pickDistinct(random, SUBSCRIPTIONS, intBetween(random, 2, 4)).map((subscription) => ({
      ...subscription,
      day: intBetween(random, 1, 28),
    })),
    savingsMinor: roundedDown(scaled(salaryMinor, intBetween(random, 500, 1_500)), 10n),
    favouriteGrocer: pick(random, residence.groceries),
    groceryWeekday: intBetween(random, 1, 6),
    transportPerWeekday: 0.15 + random() * 0.2,
    diningPerDay: 0.04 + random() * 0.1,
  };
  return { peerIndex: -1, person, habits, random };
}

// --- Planning -----------------------------------------------------------------------------------------------

const EXTERNAL = -1;

/** A transfer before the balance check; `from`/`to` are account indexes or EXTERNAL. */
interface Candidate {
  readonly atMs: number;
  readonly from: number;
  readonly to: number;
  readonly currency: Currency;
  readonly amountMinor: bigint;
  readonly counterparty: string;
  readonly reference: string;
  readonly category: Category;
  /** When the payer cannot afford it: card spend is shrunk to what is left, anything else is dropped. */
  readonly whenShort: 'shrink' | 'skip';
  /** What must stay in the paying account afterwards (optional transfers do not eat next month's rent). */
  readonly keepMinor: bigint;
}

type CandidateInput = Omit<Candidate, 'atMs'>;

class Planner {
  readonly candidates: Candidate[] = [];
  readonly #fromMs: number;
  readonly #toMs: number;

  constructor(fromMs: number, toMs: number) {
    this.#fromMs = fromMs;
    this.#toMs = toMs;
  }

  /** Plans a transfer at a local wall-clock time; dropped when that instant lies outside [from, to). */
  addLocal(
    residence: ResidenceProfile,
    date: { year: number; month: number; day: number },
    random: Random,
    hours: readonly [number, number],
    input: CandidateInput,
  ): void {
    const local = Date.UTC(
      date.year,
      date.month,
      date.day,
      intBetween(random, hours[0], hours[1]),
      intBetween(random, 0, 59),
      intBetween(random, 0, 59),
    );
    this.add(local - residence.utcOffsetHours * HOUR_MS, input);
  }

  add(atMs: number, input: CandidateInput): void {
    if (atMs < this.#fromMs || atMs >= this.#toMs) return;
    // Spelled out rather than spread so every candidate has one shape: sorting and replaying millions of
    // them stays monomorphic (several times faster than with a spread's varying key order).
    this.candidates.push({
      atMs,
      from: input.from,
      to: input.to,
      currency: input.currency,
      amountMinor: input.amountMinor,
      counterparty: input.counterparty,
      reference: input.reference,
      category: input.category,
      whenShort: input.whenShort,
      keepMinor: input.keepMinor,
    });
  }
}

const CARD_SHRINK_MIN_MINOR = 100n;

function external(currency: Currency): string {
  return `external:${currency}`;
}

function planOpeningDeposits(planner: Planner, customers: readonly Customer[], fromMs: number): void {
  for (const { habits, random } of customers) {
    const deposit = (account: number, baseMinor: bigint, minEuros: number, maxEuros: number) =>
      planner.add(fromMs, {
        from: EXTERNAL,
        to: account,
        currency: habits.currency,
        amountMinor: baseMinor + amountBetween(random, minEuros, maxEuros, habits.currency),
        // Money the customer moves in from their own account elsewhere. Not their name: the ledger's
        // metadata is not encrypted, and a name is personal data.
        counterparty: 'Own account at another bank',
        reference: 'Opening deposit',
        category: 'opening_deposit',
        whenShort: 'skip',
        keepMinor: 0n,
      });
    // Enough for the first rent, which may fall due before the first salary.
    deposit(habits.currentAccount, habits.rentMinor, 400, 3_000);
    if (habits.savingsAccount !== undefined) deposit(habits.savingsAccount, 0n, 1_000, 20_000);
  }
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/** Monthly: salary, rent, utilities, subscriptions, savings and the odd transfer to another customer. */
function planMonth(
  planner: Planner,
  customer: Customer,
  peers: readonly Customer[],
  year: number,
  month: number,
): void {
  const { habits, random } = customer;
  const { residence, currency } = habits;
  const lastDay = daysInMonth(year, month);
  const yearMonth = `${year}-${String(month + 1).padStart(2, '0')}`;
  const common = { currency, keepMinor: 0n } as const;

  const payday = Math.min(habits.payday, lastDay);
  const paydayWeekday = new Date(Date.UTC(year, month, payday)).getUTCDay();
  const paidOn = payday - (paydayWeekday === 6 ? 1 : paydayWeekday === 0 ? 2 : 0);
  planner.addLocal(residence, { year, month, day: paidOn }, random, [5, 8], {
    ...common,
    from: EXTERNAL,
    to: habits.currentAccount,
    // Stable month to month: -1% to +3% (overtime, bonus rounding).
    amountMinor: scaled(habits.salaryMinor, intBetween(random, 9_900, 10_300)),
    counterparty: habits.employer,
    reference: `Salary ${MONTH_NAMES[month]} ${year}`,
    category: 'salary',
    whenShort: 'skip',
  });

  planner.addLocal(residence, { year, month, day: habits.rentDay }, random, [6, 9], {
    ...common,
    from: habits.currentAccount,
    to: EXTERNAL,
    amountMinor: habits.rentMinor,
    counterparty: habits.landlord,
    reference: `Rent ${yearMonth}`,
    category: 'rent',
    whenShort: 'skip',
  });

  // Heating season (November to February) costs about a third more.
  const winter = month >= 10 || month <= 1;
  planner.addLocal(residence, { year, month, day: habits.utilityDay }, random, [6, 10], {
    ...common,
    from: habits.currentAccount,
    to: EXTERNAL,
    amountMinor: scaled(habits.utilityMinor, intBetween(random, 9_000, 11_000) + (winter ? 3_500 : 0)),
    counterparty: habits.utility,
    reference: `Direct debit ${yearMonth}`,
    category: 'utilities',
    whenShort: 'skip',
  });

  for (const subscription of habits.subscriptions) {
    planner.addLocal(residence, { year, month, day: Math.min(subscription.day, lastDay) }, random, [6, 11], {
      ...common,
      from: habits.currentAccount,
      to: EXTERNAL,
      amountMinor: subscription.priceMinor,
      counterparty: subscription.name,
      reference: 'Subscription',
      category: 'subscriptions',
      whenShort: 'skip',
    });
  }

  if (habits.savingsAccount !== undefined) {
    // Shortly after payday, and only what leaves next month's rent in place.
    planner.addLocal(residence, { year, month, day: Math.min(paidOn + 2, lastDay) }, random, [9, 18], {
      ...common,
      from: habits.currentAccount,
      to: habits.savingsAccount,
      amountMinor: habits.savingsMinor,
      counterparty: 'Savings account',
      reference: 'Monthly savings',
      category: 'savings',
      whenShort: 'skip',
      keepMinor: habits.rentMinor,
    });
  }

  if (peers.length > 1 && chance(random, 0.3)) {
    // Any other customer of the currency, uniformly: draw among n - 1 and step over oneself.
    const drawn = intBetween(random, 0, peers.length - 2);
    const payee = peers[drawn >= customer.peerIndex ? drawn + 1 : drawn] as Customer;
    planner.addLocal(residence, { year, month, day: intBetween(random, 1, lastDay) }, random, [9, 22], {
      ...common,
      from: habits.currentAccount,
      to: payee.habits.currentAccount,
      amountMinor: amountBetween(random, 10, 150, currency),
      counterparty: payee.person.legalName,
      reference: pick(random, PEER_REFERENCES),
      category: 'transfer',
      whenShort: 'skip',
      keepMinor: habits.rentMinor,
    });
  }
}

/** Daily card spend: the weekly shop and top-ups, commuting and trips, eating out. */
function planDay(planner: Planner, customer: Customer, dayMs: number): void {
  const { habits, random } = customer;
  const { residence, currency } = habits;
  const day = new Date(dayMs);
  const date = { year: day.getUTCFullYear(), month: day.getUTCMonth(), day: day.getUTCDate() };
  const weekday = day.getUTCDay();
  const weekend = weekday === 0 || weekday === 6;
  const card = {
    currency,
    from: habits.currentAccount,
    to: EXTERNAL,
    reference: 'Card payment',
    whenShort: 'shrink',
    keepMinor: 0n,
  } as const;

  if (weekday === habits.groceryWeekday) {
    planner.addLocal(residence, date, random, [9, 19], {
      ...card,
      amountMinor: amountBetween(random, 35, 140, currency),
      counterparty: chance(random, 0.8) ? habits.favouriteGrocer : pick(random, residence.groceries),
      category: 'groceries',
    });
  } else if (weekday !== 0 && chance(random, 0.05)) {
    planner.addLocal(residence, date, random, [8, 20], {
      ...card,
      amountMinor: amountBetween(random, 4, 30, currency),
      counterparty: pick(random, residence.groceries),
      category: 'groceries',
    });
  }

  if (chance(random, weekend ? habits.transportPerWeekday / 2 : habits.transportPerWeekday)) {
    const merchant = pick(random, residence.transport);
    planner.addLocal(residence, date, random, [7, 20], {
      ...card,
      amountMinor: amountBetween(random, merchant.minEuros, merchant.maxEuros, currency),
      counterparty: merchant.name,
      category: 'transport',
    });
  }

  // Friday and Saturday evenings out are twice as likely.
  if (chance(random, weekday === 5 || weekday === 6 ? habits.diningPerDay * 2 : habits.diningPerDay)) {
    planner.addLocal(residence, date, random, [11, 21], {
      ...card,
      amountMinor: amountBetween(random, 6, 65, currency),
      counterparty: pick(random, residence.dining),
      category: 'dining',
    });
  }
}

/** Replays the plan in time order against running balances; returns what the ledger can execute. */
function executePlan(
  candidates: readonly Candidate[],
  accounts: readonly SandboxAccount[],
): PlannedTransfer[] {
  // Ties in time keep the order of planning (opening deposits first), so the sort is deterministic.
  const times = Float64Array.from(candidates, (candidate) => candidate.atMs);
  const order = Uint32Array.from(candidates.keys()).sort(
    (a, b) => (times[a] as number) - (times[b] as number) || a - b,
  );
  const balances = accounts.map(() => 0n);
  const transfers: PlannedTransfer[] = [];
  for (const index of order) {
    const candidate = candidates[index] as Candidate;
    let amountMinor = candidate.amountMinor;
    if (candidate.from !== EXTERNAL) {
      const available = (balances[candidate.from] as bigint) - candidate.keepMinor;
      if (amountMinor > available) {
        if (candidate.whenShort === 'skip' || available < CARD_SHRINK_MIN_MINOR) continue;
        amountMinor = available;
      }
      balances[candidate.from] = (balances[candidate.from] as bigint) - amountMinor;
    }
    if (candidate.to !== EXTERNAL) balances[candidate.to] = (balances[candidate.to] as bigint) + amountMinor;
    transfers.push({
      at: new Date(candidate.atMs),
      from:
        candidate.from === EXTERNAL
          ? external(candidate.currency)
          : (accounts[candidate.from] as SandboxAccount).key,
      to:
        candidate.to === EXTERNAL
          ? external(candidate.currency)
          : (accounts[candidate.to] as SandboxAccount).key,
      currency: candidate.currency,
      amountMinor,
      counterparty: candidate.counterparty,
      reference: candidate.reference,
      category: candidate.category,
    });
  }
  return transfers;
}

/**
 * Sandbox customers, their accounts and the transfers of the period [from, to), sorted by time and
 * executable in that order without overdrawing any account. The same options give the same data.
 * Throws on options that are a caller's bug: customers outside 1..SANDBOX_CUSTOMERS_MAX, a seed that is
 * not a safe integer, an empty, inverted or longer-than-ten-years period, more than CUSTOMER_DAYS_MAX
 * customer-days.
 */
export function generateSandbox(options: {
  customers: number;
  seed: number;
  from: Date;
  to: Date;
}): SandboxData {
  const { customers: count, seed } = options;
  const fromMs = options.from.getTime();
  const toMs = options.to.getTime();
  if (!Number.isInteger(count) || count < 1 || count > SANDBOX_CUSTOMERS_MAX) {
    throw new RangeError(`customers must be an integer in 1..${SANDBOX_CUSTOMERS_MAX}, got ${count}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  if (!(fromMs < toMs) || toMs - fromMs > PERIOD_DAYS_MAX * DAY_MS) {
    throw new RangeError(`the period must be non-empty and at most ${PERIOD_DAYS_MAX} days`);
  }
  if (((toMs - fromMs) / DAY_MS) * count > CUSTOMER_DAYS_MAX) {
    throw new RangeError(
      `customers × days must be at most ${CUSTOMER_DAYS_MAX}: fewer customers or a shorter period`,
    );
  }

  const accounts: SandboxAccount[] = [];
  const customers: Customer[] = [];
  for (let index = 0; index < count; index++) customers.push(makeCustomer(index, seed, toMs, accounts));

  const peersByCurrency = new Map<Currency, Customer[]>();
  for (const customer of customers) {
    const peers = peersByCurrency.get(customer.habits.currency) ?? [];
    customer.peerIndex = peers.length;
    peers.push(customer);
    peersByCurrency.set(customer.habits.currency, peers);
  }

  const planner = new Planner(fromMs, toMs);
  // Planned first, so at `from` they sort ahead of anything else and fund it.
  planOpeningDeposits(planner, customers, fromMs);

  // Local calendar days around the UTC period: a local day can begin up to a day before or after it.
  const from = new Date(fromMs);
  const to = new Date(toMs);
  const firstDayMs = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()) - DAY_MS;
  const lastDayMs = Date.UTC(to.getUTCFullYear(), to.getUTCMonth(), to.getUTCDate()) + DAY_MS;
  for (const customer of customers) {
    const peers = peersByCurrency.get(customer.habits.currency) ?? [];
    for (let year = from.getUTCFullYear(), month = from.getUTCMonth(); ; ) {
      planMonth(planner, customer, peers, year, month);
      if (year === to.getUTCFullYear() && month === to.getUTCMonth()) break;
      month += 1;
      if (month === 12) {
        month = 0;
        year += 1;
      }
    }
    for (let dayMs = firstDayMs; dayMs <= lastDayMs; dayMs += DAY_MS) planDay(planner, customer, dayMs);
  }

  return {
    people: customers.map((customer) => customer.person),
    accounts,
    transfers: executePlan(planner.candidates, accounts),
  };
}
