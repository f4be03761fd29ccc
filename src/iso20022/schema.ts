// Validation of ISO 20022 messages against the official XSDs (schemas/), with libxml2's validator compiled
// to WebAssembly (xmllint-wasm): the same checks `xmllint --schema` makes, on any machine, without a
// system package.
import { readFile } from 'node:fs/promises';
import { validateXML } from 'xmllint-wasm';

export type MessageDefinition = 'pain.001.001.09' | 'pacs.008.001.08' | 'pacs.002.001.10' | 'camt.053.001.08';

export interface SchemaError {
  /** Line in the document, when libxml2 gave one. */
  readonly line: number | null;
  readonly message: string;
}

export interface SchemaReport {
  readonly valid: boolean;
  readonly errors: readonly SchemaError[];
}

const schemas = new Map<MessageDefinition, Promise<string>>();
const schemaOf = (definition: MessageDefinition) => {
  let schema = schemas.get(definition);
  if (!schema) {
    schema = readFile(new URL(`schemas/${definition}.xsd`, import.meta.url), 'utf8');
    schemas.set(definition, schema);
  }
  return schema;
};

// xmllint's default WebAssembly memory (16 MiB) is too small for a 10,000-transfer pain.001 file.
const MAX_MEMORY_PAGES = 16_384; // 1 GiB, in 64 KiB pages

/** Checks `xml` against the schema of `definition`; well-formedness errors are reported the same way. */
export async function validateMessage(definition: MessageDefinition, xml: string): Promise<SchemaReport> {
  const result = await validateXML({
    xml: [{ fileName: 'message.xml', contents: xml }],
    schema: [{ fileName: `${definition}.xsd`, contents: await schemaOf(definition) }],
    maxMemoryPages: MAX_MEMORY_PAGES,
  });
  return {
    valid: result.valid,
    errors: result.errors.map((error) => ({ line: error.loc?.lineNumber ?? null, message: error.message })),
  };
}
