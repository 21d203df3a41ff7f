// Case names in one place, so hub files can attach to them without importing cases.ts.
export const caseNames = {
  wsSingle: 'ws-single-512MiB',
  wsConcurrent: 'ws-100x4MiB',
  multipart: 'busboy-multipart-512MiB',
} as const;

export type CaseName = (typeof caseNames)[keyof typeof caseNames];
