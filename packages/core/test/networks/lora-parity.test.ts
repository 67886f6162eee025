import { parityTest } from '../support/parity.js';

// npm run parity:lora on ../shared/oracle/lora (or $DARKROOM_ORACLE/lora); skipped with the reason when absent.
parityTest('lora');
