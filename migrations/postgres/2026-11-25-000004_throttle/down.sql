DROP TABLE login_failures;
DROP TABLE throttle_buckets;
