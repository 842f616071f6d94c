import { consentStoreContract } from "../consent-contract.js";
import { openSqliteStore } from "./sqlite-store.js";

consentStoreContract("sqlite (memory)", () => openSqliteStore(":memory:"));
