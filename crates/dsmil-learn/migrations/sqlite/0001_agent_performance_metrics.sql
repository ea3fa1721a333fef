-- The seed's agent_performance_metrics, plus a record id (idempotent replays) and the task
-- description. Record ids are the 16 bytes of a UUID. Timestamps are microseconds since the Unix epoch; JSON columns hold objects;
-- embeddings are 256 little-endian f32 (1024 bytes).
CREATE TABLE agent_performance_metrics (
    id                INTEGER PRIMARY KEY,
    record_id         BLOB    NOT NULL UNIQUE CHECK (length(record_id) = 16),
    agent_id          TEXT    NOT NULL,
    task_type         TEXT    NOT NULL,
    task_description  TEXT    NOT NULL DEFAULT '',
    execution_time_ms INTEGER NOT NULL CHECK (execution_time_ms >= 0),
    success_rate      REAL    NOT NULL CHECK (success_rate BETWEEN 0 AND 1),
    resource_usage    TEXT    NOT NULL DEFAULT '{}',
    error_details     TEXT,
    context_factors   TEXT    NOT NULL DEFAULT '{}',
    vector_embedding  BLOB    NOT NULL CHECK (length(vector_embedding) = 1024),
    tpm_signature     TEXT,
    timestamp_us      INTEGER NOT NULL
);
CREATE INDEX agent_performance_metrics_agent_time ON agent_performance_metrics (agent_id, timestamp_us);
CREATE INDEX agent_performance_metrics_time ON agent_performance_metrics (timestamp_us);
