DROP TABLE admin_locks;
