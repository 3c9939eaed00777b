//! Schema migrations. Each entry runs once, in order, inside one transaction; the
//! applied count is kept in `PRAGMA user_version`.

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT,
    is_owner INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL REFERENCES accounts(id),
    maintenance INTEGER NOT NULL DEFAULT 0,
    stack TEXT NOT NULL,
    region TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    released_at TEXT
);
CREATE TABLE collaborators (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_id, account_id)
);
CREATE TABLE config_vars (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE TABLE slugs (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    checksum TEXT NOT NULL,
    size INTEGER NOT NULL,
    process_types TEXT NOT NULL,
    buildpack_provided_description TEXT,
    commit_sha TEXT,
    stack TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    slug_id TEXT REFERENCES slugs(id),
    config TEXT NOT NULL,
    addon_plan_names TEXT NOT NULL DEFAULT '[]',
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_id, version)
);
-- The release ledger is append-only: only status (and updated_at) may change, and rows
-- go away only together with their app.
CREATE TRIGGER releases_append_only BEFORE UPDATE ON releases
WHEN NEW.id IS NOT OLD.id OR NEW.app_id IS NOT OLD.app_id OR NEW.version IS NOT OLD.version
  OR NEW.description IS NOT OLD.description OR NEW.slug_id IS NOT OLD.slug_id
  OR NEW.config IS NOT OLD.config OR NEW.addon_plan_names IS NOT OLD.addon_plan_names
  OR NEW.user_id IS NOT OLD.user_id OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'the release ledger is append-only'); END;
CREATE TRIGGER releases_no_delete BEFORE DELETE ON releases
WHEN EXISTS (SELECT 1 FROM apps WHERE id = OLD.app_id)
BEGIN SELECT RAISE(ABORT, 'the release ledger is append-only'); END;
CREATE TABLE builds (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    source_url TEXT,
    source_version TEXT,
    slug_id TEXT,
    release_id TEXT,
    user_id TEXT NOT NULL,
    buildpacks TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE formation (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    size TEXT NOT NULL,
    command TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_id, type)
);
CREATE TABLE dynos (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    command TEXT NOT NULL,
    size TEXT NOT NULL,
    release_version INTEGER NOT NULL,
    port INTEGER,
    attach INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX dynos_app ON dynos(app_id, name);
CREATE TABLE domains (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    hostname TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE addons (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    provider_id TEXT,
    config TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE addon_attachments (
    id TEXT PRIMARY KEY,
    addon_id TEXT NOT NULL REFERENCES addons(id) ON DELETE CASCADE,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_id, name)
);
CREATE TABLE log_drains (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_id, url)
);
CREATE TABLE buildpack_installations (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (app_id, ordinal)
);
CREATE TABLE app_features (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
);
"#,
    r#"
-- Add-ons of destroyed apps whose resource (database, server, partner resource) has
-- not been given back yet. Written in the app's deletion transaction, so a crash after
-- it cannot lose one; start-up and a periodic sweep finish them.
CREATE TABLE addon_deprovisions (
    id TEXT PRIMARY KEY,
    addon_name TEXT NOT NULL,
    service TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"#,
    // Why a build failed when its own output cannot say it (e.g. interrupted).
    r#"
ALTER TABLE builds ADD COLUMN status_reason TEXT;
"#,
    r#"
-- Upload slots issued by POST /sources: PUT accepts only these, up to max_bytes,
-- until expires_at; expired ones are swept with their files.
CREATE TABLE source_slots (
    id_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    max_bytes INTEGER NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX source_slots_expiry ON source_slots (expires_at);
"#,
];
