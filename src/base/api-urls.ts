// ipa-api-url may name several Ironic APIs, separated by commas (IPA's rule):
// the agent tries them in turn. The config checks each one; the conductor
// client sends to them; the first one picks the agent's callback address.

/** The URLs in an ipa-api-url value: comma separated, blanks ignored, trailing slashes dropped. */
export function splitApiUrls(value: string): string[] {
  return value
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter(Boolean);
}
