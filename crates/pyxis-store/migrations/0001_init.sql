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

CREATE TABLE audit_log (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id        TEXT NOT NULL,
    started_at_ms     INTEGER NOT NULL,
    finished_at_ms    INTEGER NOT NULL,
    tenant            TEXT NOT NULL,
    key_id            TEXT,
    model             TEXT NOT NULL,
    endpoint          TEXT,
    runtime           TEXT,
    runtime_kind      TEXT,
    hardware          TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    error_type        TEXT,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    stream            INTEGER NOT NULL
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant, started_at_ms);
CREATE INDEX audit_log_request ON audit_log (request_id);
