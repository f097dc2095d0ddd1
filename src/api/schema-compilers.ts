import type { TSchema } from '@sinclair/typebox';
import type { FastifyServerOptions } from 'fastify';
import { Value } from '@sinclair/typebox/value';

// Fastify's own schema compilers are ajv (validation) and fast-json-stringify
// (responses). The API's schemas are a few TypeBox objects of optional strings
// and no route has a response schema, so TypeBox's checker, which the command
// engine loads anyway, does the validation and JSON.stringify the rest. Handing
// fastify both factories keeps it from ever loading ajv and fast-json-stringify:
// less heap on an idle agent (docs/footprint.md, lever 11).

interface RouteSchema {
  schema: unknown;
  httpPart?: string;
}

/** What fastify calls a failed check: an Error it answers as 400 (worded as ajv's, e.g. "querystring/agent_token must be string"). */
function mismatch(schema: TSchema, data: unknown, httpPart: string | undefined): Error {
  const first = Value.Errors(schema, data).First();
  const path = first?.path ?? '';
  const wanted = (first?.schema as { type?: unknown } | undefined)?.type;
  return new Error(`${httpPart ?? 'request'}${path} ${typeof wanted === 'string' ? `must be ${wanted}` : (first?.message ?? 'is invalid')}`);
}

function buildValidator() {
  return ({ schema, httpPart }: RouteSchema) => {
    const s = schema as TSchema;
    return (data: unknown) => (Value.Check(s, data) ? { value: data } : { error: mismatch(s, data, httpPart) });
  };
}

function buildSerializer() {
  return () => (data: unknown) => JSON.stringify(data);
}

type Factories = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;

/** Fastify's `schemaController` option: TypeBox validation, JSON.stringify serialization. */
export const typeboxSchemaController = {
  // Typed by fastify as ajv's and fast-json-stringify's factories; these take and return the same shapes.
  compilersFactory: { buildValidator, buildSerializer } as unknown as Factories,
};
