-- The workflow journal: every state change and task result, written before it is acknowledged.
CREATE TABLE workflows (
    id          TEXT    PRIMARY KEY,
    spec        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    created_us  INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL,
    result      TEXT
);
CREATE INDEX workflows_state ON workflows (state);

CREATE TABLE task_results (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id  TEXT    NOT NULL REFERENCES workflows (id),
    task_id      TEXT    NOT NULL,
    result       TEXT    NOT NULL
);
CREATE INDEX task_results_workflow ON task_results (workflow_id, seq);

CREATE TABLE transitions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id  TEXT    NOT NULL REFERENCES workflows (id),
    at_us        INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    detail       TEXT    NOT NULL
);
CREATE INDEX transitions_workflow ON transitions (workflow_id, seq);
