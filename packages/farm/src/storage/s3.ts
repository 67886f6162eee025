import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
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
}

/**
 * `s3://bucket[/prefix]?endpoint=http://minio:9000&region=us-east-1&forcePathStyle=true[&publicEndpoint=http://localhost:9000]`.
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
  };
}

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404;
}

export class S3Storage implements Storage {
  readonly driver = 's3' as const;
  private readonly client: S3Client;
  private readonly presigner: S3Client;

  constructor(readonly location: S3Location) {
    this.client = S3Storage.client(location, location.endpoint);
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
    await this.client.send(new PutObjectCommand({
      Bucket: this.location.bucket, Key: this.key(key), Body: createReadStream(path), ContentLength: size, ContentType: contentType,
    }));
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
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
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
