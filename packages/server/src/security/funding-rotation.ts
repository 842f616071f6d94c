/**
 * Finishing a server-secret rotation: funding keys are encrypted under the secret current when they
 * were stored, so once WATTFARE_SERVER_SECRET_PREVIOUS is removed, a key still under it could never be
 * read again. A server started with both secrets re-encrypts every such key under the new one at start.
 */
import type { Store } from "../store/port.js";
import { decryptFundingKey, encryptFundingKey, needsReencryption } from "./funding-crypto.js";
import type { KeyRing } from "./keyring.js";

export interface Reencryption {
  /** Keys now under the current secret. */
  reencrypted: number;
  /** Keys no secret at hand can read (stored under a secret older than both): their payers reconnect. */
  unreadable: number;
}

export async function reencryptFundingKeys(store: Store, ring: KeyRing): Promise<Reencryption> {
  const result: Reencryption = { reencrypted: 0, unreadable: 0 };
  for (const { id, keyBlob } of await store.fundingKeyBlobs()) {
    if (!needsReencryption(ring, keyBlob)) continue;
    let key: string;
    try {
      key = decryptFundingKey(ring, keyBlob, id);
    } catch {
      result.unreadable++;
      continue;
    }
    // Compare-and-set: a row replaced meanwhile (a reconnect) keeps its new blob.
    if (await store.replaceFundingKeyBlob(id, keyBlob, encryptFundingKey(ring, key, id)))
      result.reencrypted++;
  }
  return result;
}
