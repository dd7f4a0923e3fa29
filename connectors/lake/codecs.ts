import { compress as snappyCompress, uncompress as snappyUncompress } from 'snappyjs';
import { ConnectorPermanentError } from '#core/errors';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/** Parquet's compression codecs (CompressionCodec in parquet.thrift) that Lethe reads and writes. */
export const CODEC_NAMES = ['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'LZO', 'BROTLI', 'LZ4', 'ZSTD', 'LZ4_RAW'] as const;

/** A Parquet file Lethe cannot rewrite faithfully: it is left alone, and the task fails saying why. */
export class UnsupportedParquetError extends ConnectorPermanentError {}

export function decompress(codec: number, bytes: Uint8Array, uncompressedSize: number): Uint8Array {
  switch (codec) {
    case 0:
      return bytes;
    case 1:
      return snappyUncompress(bytes, uncompressedSize);
    case 2:
      return gunzipSync(bytes);
    case 4:
      return brotliDecompressSync(bytes);
    case 6:
      return zstdDecompressSync(bytes);
    default:
      throw new UnsupportedParquetError(`compression ${CODEC_NAMES[codec] ?? String(codec)} is not supported`);
  }
}

export function compress(codec: number, bytes: Uint8Array): Uint8Array {
  switch (codec) {
    case 0:
      return bytes;
    case 1:
      return snappyCompress(bytes);
    case 2:
      return gzipSync(bytes);
    case 4:
      return brotliCompressSync(bytes);
    case 6:
      return zstdCompressSync(bytes);
    default:
      throw new UnsupportedParquetError(`compression ${CODEC_NAMES[codec] ?? String(codec)} is not supported`);
  }
}
