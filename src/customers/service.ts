// Customers: the people the bank has a relationship with, created when account opening approves them.
// Every personal field is encrypted at rest (pii.ts); the national id is also kept as a blind index, so
// "is this person already a customer?" is one indexed lookup that reveals nothing else.
import type { Db, Sql } from '../db/db.ts';
import type { NationalIdType } from '../kyc/validators.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import {
  type CustomerKind,
  customerKind,
  customerWithNationalId,
  findCustomer,
  insertCustomer,
  type RiskRating,
} from './store.ts';

export interface Address {
  readonly lines: readonly string[];
  readonly city: string;
  readonly postCode: string;
  /** ISO 3166 alpha-2. */
  readonly country: string;
}

export interface NationalId {
  readonly type: NationalIdType;
  /** Canonical form (checkNationalId's `value`). */
  readonly number: string;
}

export interface PersonalData {
  readonly legalName: string;
  /** YYYY-MM-DD */
  readonly dateOfBirth: string;
  readonly nationality: string;
  readonly nationalId: NationalId | null;
  readonly address: Address;
  readonly email: string;
  /** E.164 */
  readonly phone: string;
}

export interface Customer extends PersonalData {
  readonly id: string;
  readonly riskRating: RiskRating;
  readonly status: 'active' | 'closed';
  readonly createdAt: Date;
}

export class Customers {
  readonly #db: Db;
  readonly #pii: Pii;
  readonly #now: () => Date;

  constructor(options: { db: Db; pii: Pii; now?: () => Date }) {
    this.#db = options.db;
    this.#pii = options.pii;
    this.#now = options.now ?? (() => new Date());
  }

  nationalIdIndex(id: NationalId): string {
    return this.#pii.blindIndex('national_id', `${id.type}:${id.number}`);
  }

  /** The customer holding this national id, if any. */
  withNationalId(id: NationalId, sql: Sql = this.#db): Promise<string | undefined> {
    return customerWithNationalId(sql, this.nationalIdIndex(id));
  }

  /** False when the national id already belongs to a customer. */
  create(
    sql: Sql,
    input: {
      id: string;
      person: PersonalData;
      riskRating: RiskRating;
      applicationId: string | null;
      kind?: CustomerKind;
    },
  ): Promise<boolean> {
    const { id, person } = input;
    const seal = (column: string, value: string) =>
      this.#pii.encrypt(value, fieldContext('customers', column, id));
    return insertCustomer(sql, {
      id,
      legalNameEnc: seal('legal_name_enc', person.legalName),
      dateOfBirthEnc: seal('date_of_birth_enc', person.dateOfBirth),
      nationalityEnc: seal('nationality_enc', person.nationality),
      nationalIdType: person.nationalId?.type ?? 'none',
      nationalIdEnc: person.nationalId ? seal('national_id_enc', person.nationalId.number) : null,
      nationalIdIndex: person.nationalId ? this.nationalIdIndex(person.nationalId) : null,
      addressEnc: seal('address_enc', JSON.stringify(person.address)),
      emailEnc: seal('email_enc', person.email),
      phoneEnc: seal('phone_enc', person.phone),
      riskRating: input.riskRating,
      status: 'active',
      applicationId: input.applicationId,
      createdAt: this.#now(),
      kind: input.kind ?? 'personal',
    });
  }

  /** Whether the customer is a person or a business (whose several users act for it); undefined if unknown. */
  kind(id: string): Promise<CustomerKind | undefined> {
    return customerKind(this.#db, id);
  }

  async find(id: string): Promise<Customer | undefined> {
    const stored = await findCustomer(this.#db, id);
    if (!stored) return undefined;
    const open = (column: string, value: string) =>
      this.#pii.decrypt(value, fieldContext('customers', column, id));
    const [legalName, dateOfBirth, nationality, address, email, phone, nationalIdNumber] = await Promise.all([
      open('legal_name_enc', stored.legalNameEnc),
      open('date_of_birth_enc', stored.dateOfBirthEnc),
      open('nationality_enc', stored.nationalityEnc),
      open('address_enc', stored.addressEnc),
      open('email_enc', stored.emailEnc),
      open('phone_enc', stored.phoneEnc),
      stored.nationalIdEnc === null ? null : open('national_id_enc', stored.nationalIdEnc),
    ]);
    return {
      id,
      legalName,
      dateOfBirth,
      nationality,
      nationalId:
        nationalIdNumber === null
          ? null
          : { type: stored.nationalIdType as NationalIdType, number: nationalIdNumber },
      address: JSON.parse(address) as Address,
      email,
      phone,
      riskRating: stored.riskRating,
      status: stored.status,
      createdAt: stored.createdAt,
    };
  }

  /** The name to show as an account's holder. */
  async holderName(id: string): Promise<string | undefined> {
    const stored = await findCustomer(this.#db, id);
    return stored && this.#pii.decrypt(stored.legalNameEnc, fieldContext('customers', 'legal_name_enc', id));
  }
}
