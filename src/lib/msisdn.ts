const E164 = /^\+[1-9][0-9]{6,14}$/;

export function isE164(value: string): boolean {
  return E164.test(value);
}

/** `+84901234567` → `+8490****567`: country and prefix kept, the subscriber digits hidden. */
export function maskMsisdn(msisdn: string): string {
  if (msisdn.length < 8) return '****';
  return `${msisdn.slice(0, 5)}****${msisdn.slice(-3)}`;
}

const MSISDN_IN_TEXT = /(\+|%2B)([0-9]{7,15})/gi;

/** Masks every phone number found in free text (URLs, messages) before it is logged. */
export function maskMsisdnsInText(text: string): string {
  return text.replace(MSISDN_IN_TEXT, (_m, plus: string, digits: string) => {
    return `${plus}${digits.slice(0, 4)}****${digits.slice(-3)}`;
  });
}
