-- Tenants, their API keys (only hashes are stored) and the audit log. SQLite dialect; keep in step with
-- migrations/postgres/0001_init.sql (same tables, columns and meaning).
CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id),
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Bumped on every key change so a running server notices revocations made by the CLI.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO settings (name, value) VALUES ('key_epoch', 0);

-- One row per call. `seq` is assigned by the writer (last + 1) inside the transaction that
-- appends, and `hash` = SHA-256(prev_hash || the record's canonical bytes), so the rows form a
-- hash chain in `seq` order: a changed, removed or reordered row breaks it.
CREATE TABLE audit_log (
    seq               INTEGER PRIMARY KEY,
    request_id        TEXT NOT NULL,
    started_at_ms     BIGINT NOT NULL,
    finished_at_ms    BIGINT NOT NULL,
    tenant            TEXT NOT NULL,
    key_id            TEXT,
    requested_model   TEXT NOT NULL,
    model             TEXT NOT NULL,
    model_version     TEXT,
    lora_adapter      TEXT,
    endpoint          TEXT,
    runtime           TEXT,
    runtime_kind      TEXT,
    runtime_version   TEXT,
    hardware          TEXT,
    accelerator_count BIGINT,
    cloud             TEXT,
    region            TEXT,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    status            BIGINT NOT NULL,
    error_type        TEXT,
    queue_ms          DOUBLE PRECISION NOT NULL,
    ttft_ms           DOUBLE PRECISION,
    latency_ms        DOUBLE PRECISION NOT NULL,
    attempts          BIGINT NOT NULL,
    stream            BIGINT NOT NULL,
    cost_usd          DOUBLE PRECISION NOT NULL,
    prompt_text       TEXT,
    completion_text   TEXT,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant, started_at_ms);
CREATE INDEX audit_log_time ON audit_log (started_at_ms);
CREATE INDEX audit_log_request ON audit_log (request_id);

-- One row per server run that wrote the log. A run without `stopped_at_ms` that is not the
-- current one ended uncleanly (kill -9, power loss): records of calls that finished after its
-- last flush may be missing, and `pyxis audit verify` says so.
CREATE TABLE audit_sessions (
    id              INTEGER PRIMARY KEY,
    started_at_ms   BIGINT NOT NULL,
    stopped_at_ms   BIGINT,
    first_seq       BIGINT,
    last_seq        BIGINT,
    last_flush_ms   BIGINT,
    flush_delay_ms  BIGINT NOT NULL,
    host            TEXT
);
