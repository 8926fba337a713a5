ALTER TABLE "requests" ADD COLUMN "errors_csv_key" text;--> statement-breakpoint
ALTER TABLE "requests" ADD COLUMN "input_bytes" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "requests" ADD COLUMN "output_bytes" bigint DEFAULT 0 NOT NULL;