// Moved: IPA's wire classes and the domain -> wire table are in wire-errors.ts.
// This re-export keeps code written against the old path compiling.
export * from './wire-errors.ts';
