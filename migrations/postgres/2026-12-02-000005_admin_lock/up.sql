-- One row that admin writes lock (SELECT ... FOR UPDATE) on PostgreSQL and MySQL/MariaDB, so the changes of who
-- holds which stk letter are checked one at a time (SQLite serialises every writer anyway).
CREATE TABLE admin_locks (
    name VARCHAR(64) PRIMARY KEY NOT NULL
);
INSERT INTO admin_locks (name) VALUES ('letters');
