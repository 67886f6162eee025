import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand,
  HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { assertKey, type Storage } from './types.js';

export interface S3Location {
  bucket: string;
  /** Key prefix inside the bucket ("" or "a/b/"). */
  prefix: string;
  endpoint: string | undefined;
  /** Endpoint clients reach (presigned URLs are signed for this host), when it differs from `endpoint`. */
  publicEndpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** How long a request's socket may go without a byte either way before the attempt is given up (the SDK retries). */
  silenceTimeoutMs: number;
  /** Connections to the store per pool: one pool for downloads streamed to clients, one for everything else. */
  maxSockets: number;
}

/**
 * `s3://bucket[/prefix]?endpoint=http://minio:9000&region=us-east-1&forcePathStyle=true[&publicEndpoint=http://localhost:9000][&silenceTimeoutMs=120000][&maxSockets=50]`.
 * `publicEndpoint` is for setups where the services reach the store by an internal name that clients cannot
 * resolve (Docker Compose, Kubernetes): URLs handed to clients are signed for it. Credentials come
 * from the AWS SDK's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, instance roles, ...), never the URL.
 */
export function parseS3Url(url: string): S3Location {
  const u = new URL(url);
  if (u.protocol !== 's3:' || !u.hostname) throw new Error(`STORAGE_URL "${url}" is not s3://bucket[/prefix]?...`);
  const path = u.pathname.replace(/^\/+|\/+$/g, '');
  const endpoint = u.searchParams.get('endpoint') ?? undefined;
  const fps = u.searchParams.get('forcePathStyle');
  return {
    bucket: u.hostname,
    prefix: path ? `${path}/` : '',
    endpoint,
    publicEndpoint: u.searchParams.get('publicEndpoint') ?? undefined,
    region: u.searchParams.get('region') ?? process.env.AWS_REGION ?? 'us-east-1',
    // MinIO and s3rver want path-style addressing; default to it whenever a custom endpoint is given.
    forcePathStyle: fps === null ? endpoint !== undefined : fps === 'true',
    silenceTimeoutMs: wholeParam(u.searchParams.get('silenceTimeoutMs'), 'silenceTimeoutMs', DEFAULT_SILENCE_TIMEOUT_MS, 'milliseconds'),
    maxSockets: wholeParam(u.searchParams.get('maxSockets'), 'maxSockets', DEFAULT_MAX_SOCKETS, 'connections'),
  };
}

/** Files up to this size go in one PUT; larger ones in parts (a single PUT stops at 5 GiB). */
const MULTIPART_ABOVE_BYTES = 64 * 1024 ** 2;
/** S3's limits: parts of 5 MiB to 5 GiB, at most 10,000 of them. */
const MIN_PART_BYTES = 64 * 1024 ** 2;
const MAX_PARTS = 10_000;

/** Part size for a file of `size` bytes: 64 MiB, grown (in MiB steps) only when 10,000 parts would not hold it. */
export function partSize(size: number): number {
  const needed = Math.ceil(size / MAX_PARTS / 1024 ** 2) * 1024 ** 2;
  return Math.max(MIN_PART_BYTES, needed);
}

/** How long a connection to the store may take to open (at most; less when the silence limit is shorter). */
const S3_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_SILENCE_TIMEOUT_MS = 120_000;

/** The SDK's own default pool size, per pool here. */
const DEFAULT_MAX_SOCKETS = 50;

function wholeParam(param: string | null, name: string, fallback: number, unit: string): number {
  if (param === null) return fallback;
  const n = Number(param);
  if (!Number.isInteger(n) || n < 1) throw new Error(`STORAGE_URL ${name} "${param}" is not a whole number of ${unit} above 0`);
  return n;
}

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404;
}

export class S3Storage implements Storage {
  readonly driver = 's3' as const;
  private readonly client: S3Client;
  /**
   * getStream's own client, so its own connection pool. A download piped to an HTTP client holds its connection
   * to the store for as long as that client takes to read it (up to the silence limit when it stops reading);
   * with one pool, a crowd of slow readers would leave every other call (job outputs, listings, uploads)
   * queued for a connection until it timed out.
   */
  private readonly downloads: S3Client;
  private readonly presigner: S3Client;

  constructor(readonly location: S3Location) {
    this.client = S3Storage.client(location, location.endpoint);
    this.downloads = S3Storage.client(location, location.endpoint);
    this.presigner = location.publicEndpoint ? S3Storage.client(location, location.publicEndpoint) : this.client;
  }

  private static client(location: S3Location, endpoint: string | undefined): S3Client {
    return new S3Client({
      region: location.region,
      endpoint,
      forcePathStyle: location.forcePathStyle,
      // The SDK's default streams uploads as aws-chunked with trailing checksums, which several S3-compatible
      // servers (s3rver, older MinIO, some gateways) store verbatim; checksums only where S3 requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // The SDK waits on a connect or a silent socket forever by default: a store that stops answering would
      // hang a render's upload or an API call for good. These fail the attempt instead (the SDK retries it);
      // the socket limit is on silence, so a large transfer that keeps moving is never cut.
      // A call queued for a free connection counts against the connect limit too.
      requestHandler: {
        connectionTimeout: Math.min(S3_CONNECT_TIMEOUT_MS, location.silenceTimeoutMs), socketTimeout: location.silenceTimeoutMs,
        httpAgent: { maxSockets: location.maxSockets }, httpsAgent: { maxSockets: location.maxSockets },
      },
    });
  }

  private key(key: string): string {
    assertKey(key);
    return this.location.prefix + key;
  }

  async put(key: string, body: Uint8Array, contentType = 'application/octet-stream'): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.location.bucket, Key: this.key(key), Body: body, ContentType: contentType }));
  }

  async putFile(key: string, path: string, contentType = 'application/octet-stream'): Promise<void> {
    const { size } = await stat(path);
    if (size > MULTIPART_ABOVE_BYTES) {
      await this.putFileInParts(key, path, size, contentType);
      return;
    }
    await this.client.send(new PutObjectCommand({
      Bucket: this.location.bucket, Key: this.key(key), Body: createReadStream(path), ContentLength: size, ContentType: contentType,
    }));
  }

  /**
   * A multipart upload, each part streamed from its range of the file (memory: one stream buffer, whatever the
   * size). The object appears only when every part is in; a failure aborts the upload so no parts are left billed.
   */
  private async putFileInParts(key: string, path: string, size: number, contentType: string): Promise<void> {
    const Bucket = this.location.bucket;
    const Key = this.key(key);
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, ContentType: contentType }));
    if (!UploadId) throw new Error(`S3 gave no upload id for ${key}`);
    try {
      const step = partSize(size);
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let start = 0, n = 1; start < size; start += step, n++) {
        const end = Math.min(size, start + step);
        const r = await this.client.send(new UploadPartCommand({
          Bucket, Key, UploadId, PartNumber: n, Body: createReadStream(path, { start, end: end - 1 }), ContentLength: end - start,
        }));
        if (!r.ETag) throw new Error(`S3 gave no ETag for part ${n} of ${key}`);
        parts.push({ ETag: r.ETag, PartNumber: n });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (e) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw e;
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
      return r.Body ? await r.Body.transformToByteArray() : new Uint8Array();
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async getStream(key: string): Promise<Readable | null> {
    try {
      const r = await this.downloads.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
      return r.Body instanceof Readable ? r.Body : Readable.from([await r.Body!.transformToByteArray()]);
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({
        Bucket: this.location.bucket, Prefix: this.location.prefix + prefix, ContinuationToken: token,
      }));
      for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key.slice(this.location.prefix.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
  }

  async presignedUrl(key: string, expiresInS: number): Promise<string | null> {
    return getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }), { expiresIn: expiresInS });
  }
}
