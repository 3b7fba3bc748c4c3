#!/bin/sh
# One-shot set-up of MinIO for ferroflow (the minio-init service of compose.yaml): the
# artifacts bucket, and a user whose policy reaches that bucket only, so ferroflow never holds
# MinIO's root credentials. Every step is idempotent: it runs at each `docker compose up`.
set -eu

mc alias set store http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "store/$S3_BUCKET"

# printf fills in the bucket: the image has few text tools besides the shell's builtins.
policy="${TMPDIR:-/tmp}/ferroflow-artifacts.json"
printf '{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow",
   "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
   "Resource": ["arn:aws:s3:::%s"]},
  {"Effect": "Allow",
   "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
              "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
   "Resource": ["arn:aws:s3:::%s/*"]}]}\n' "$S3_BUCKET" "$S3_BUCKET" >"$policy"
mc admin policy create store ferroflow-artifacts "$policy"
mc admin user add store "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY"
mc admin policy attach store ferroflow-artifacts --user "$S3_ACCESS_KEY_ID"
