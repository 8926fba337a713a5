-- Ingest speed: the per-row check of this key cost 0.4–0.9 s of 100 000 products × 3 images (drizzle/schema.ts).
ALTER TABLE "products" DROP CONSTRAINT "products_request_id_requests_id_fk";
