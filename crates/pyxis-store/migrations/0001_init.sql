-- Tenants, their API keys (only hashes are stored) and the audit log.
CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Bumped on every key change so a running server notices revocations made by the CLI.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT INTO settings (name, value) VALUES ('key_epoch', 0);

-- One row per call. `seq` is assigned by the writer (last + 1) inside the transaction that
-- appends, and `hash` = SHA-256(prev_hash || the record's canonical bytes), so the rows form a
-- hash chain in `seq` order: a changed, removed or reordered row breaks it.
CREATE TABLE audit_log (
    seq               INTEGER PRIMARY KEY,
    request_id        TEXT NOT NULL,
    started_at_ms     INTEGER NOT NULL,
    finished_at_ms    INTEGER NOT NULL,
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
    accelerator_count INTEGER,
    cloud             TEXT,
    region            TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    error_type        TEXT,
    queue_ms          REAL NOT NULL,
    ttft_ms           REAL,
    latency_ms        REAL NOT NULL,
    attempts          INTEGER NOT NULL,
    stream            INTEGER NOT NULL,
    cost_usd          REAL NOT NULL,
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
    started_at_ms   INTEGER NOT NULL,
    stopped_at_ms   INTEGER,
    first_seq       INTEGER,
    last_seq        INTEGER,
    last_flush_ms   INTEGER,
    flush_delay_ms  INTEGER NOT NULL,
    host            TEXT
);
