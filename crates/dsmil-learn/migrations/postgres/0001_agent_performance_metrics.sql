-- The seed's agent_performance_metrics, plus a record id (idempotent replays) and the task
-- description; cosine HNSW index on the embedding.
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;

CREATE TABLE agent_performance_metrics (
    id                BIGSERIAL PRIMARY KEY,
    record_id         UUID             NOT NULL UNIQUE,
    agent_id          TEXT             NOT NULL,
    task_type         TEXT             NOT NULL,
    task_description  TEXT             NOT NULL DEFAULT '',
    execution_time_ms BIGINT           NOT NULL CHECK (execution_time_ms >= 0),
    success_rate      DOUBLE PRECISION NOT NULL CHECK (success_rate BETWEEN 0 AND 1),
    resource_usage    JSONB            NOT NULL DEFAULT '{}',
    error_details     TEXT,
    context_factors   JSONB            NOT NULL DEFAULT '{}',
    vector_embedding  vector(256)      NOT NULL,
    tpm_signature     TEXT,
    timestamp         TIMESTAMPTZ      NOT NULL
);
CREATE INDEX agent_performance_metrics_embedding
    ON agent_performance_metrics USING hnsw (vector_embedding vector_cosine_ops);
CREATE INDEX agent_performance_metrics_agent_time ON agent_performance_metrics (agent_id, timestamp);
CREATE INDEX agent_performance_metrics_time ON agent_performance_metrics (timestamp);
