// Identity documents arrive as bytes whose type is decided by their content (magic numbers, via file-type),
// never by a file name or a declared type: a script renamed to passport.pdf is refused.
import { createHash } from 'node:crypto';
import { fileTypeFromBuffer } from 'file-type';

export const DOCUMENT_KINDS = [
  'passport',
  'national_id_card',
  'driving_licence',
  'proof_of_address',
] as const;
export type DocumentKind = (typeof DOCUMENT_KINDS)[number];
export const IDENTITY_DOCUMENT_KINDS: readonly DocumentKind[] = [
  'passport',
  'national_id_card',
  'driving_licence',
];
export const DOCUMENT_MEDIA_TYPES = ['application/pdf', 'image/jpeg', 'image/png'] as const;
export type DocumentMediaType = (typeof DOCUMENT_MEDIA_TYPES)[number];
export const DOCUMENT_BYTES_MAX = 4 * 1024 * 1024;
export const DOCUMENT_BYTES_MIN = 100;
export const DOCUMENTS_MAX = 4;

export interface CheckedDocument {
  readonly kind: DocumentKind;
  readonly mediaType: DocumentMediaType;
  readonly bytes: Buffer;
  readonly sha256: string;
}

export type DocumentProblem = 'too_large' | 'too_small' | 'unsupported_type' | 'type_mismatch';

/** The document's real type, or why it is refused. `declared` is what the sender claimed, if anything. */
export async function checkDocument(
  kind: DocumentKind,
  bytes: Buffer,
  declared: string | undefined,
): Promise<{ ok: true; document: CheckedDocument } | { ok: false; reason: DocumentProblem }> {
  if (bytes.length > DOCUMENT_BYTES_MAX) return { ok: false, reason: 'too_large' };
  // Smaller than any real scan or photo; also keeps an empty "file" out.
  if (bytes.length < DOCUMENT_BYTES_MIN) return { ok: false, reason: 'too_small' };
  const detected = await fileTypeFromBuffer(bytes);
  const mediaType = DOCUMENT_MEDIA_TYPES.find((type) => type === detected?.mime);
  if (!mediaType) return { ok: false, reason: 'unsupported_type' };
  if (declared !== undefined && declared !== mediaType) return { ok: false, reason: 'type_mismatch' };
  return {
    ok: true,
    document: { kind, mediaType, bytes, sha256: createHash('sha256').update(bytes).digest('hex') },
  };
}
