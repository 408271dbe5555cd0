/** CrystFEL streams (format 2.x): plain data types, a streaming reader and a streaming writer. */

export {
  CRYSTFEL_TO_CXI_OFFSET_PX,
  crystfelColumnToCxi,
  crystfelToCxiPx,
  cxiColumnToCrystfel,
  cxiToCrystfelPx,
} from './pixels.js';
export {
  type ParsedStream,
  parseStreamText,
  readStream,
  type StreamFile,
  type StreamReadOptions,
} from './reader.js';
export { emptyPeakTable } from './tables.js';
export * from './types.js';
export {
  createStreamWriter,
  formatChunk,
  formatCrystal,
  formatStreamHeader,
  formatStreamText,
  formatUnitCellText,
  type StreamWriter,
  type StreamWriterOptions,
} from './writer.js';
